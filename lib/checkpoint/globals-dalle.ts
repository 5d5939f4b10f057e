/**
 * The classes of a DALL-E encoder pickled whole by `torch.save(module)` (OpenAI's `encoder.pkl`, the
 * file BEiT's `--discrete_vae_type dall-e` loads): `dall_e.encoder.Encoder`, `.EncoderBlock`,
 * `dall_e.utils.Conv2d` and the torch.nn containers they are built from. Admitted as *inert records*
 * only: nothing is imported or constructed, a record holds the module's attribute dict exactly as the
 * file states it. Together with the tensor/builtin handlers and strict mode this is the whole
 * allow-list such a file is read with (lib/dvae/encoder-file.ts); any other global is refused.
 */
import type { Buildable, GlobalHandler, HandlerContext } from './pickle';
import { describe } from './pickle';
import { PickleRecord, PyDict, PyGlobal, PyValue, makeTuple } from './pyvalues';

/** The module classes of OpenAI's DALL-E encoder pickle (module path + class name, as pickled). */
export const DALLE_ENCODER_CLASSES = [
  'dall_e.encoder.Encoder',
  'dall_e.encoder.EncoderBlock',
  'dall_e.utils.Conv2d',
  'torch.nn.modules.container.Sequential',
  'torch.nn.modules.activation.ReLU',
  'torch.nn.modules.pooling.MaxPool2d',
  'torch.nn.modules.linear.Identity',
] as const;

/**
 * One pickled torch.nn.Module: `cls.__new__(cls)` (NEWOBJ with no arguments) followed by BUILD with the
 * module's `__dict__` (`_parameters`, `_modules`, attributes). Anything else (constructor arguments,
 * a second BUILD, a state that is not a str-keyed dict) is refused: a module pickled by torch.save never
 * has it, and a file that does is not what it claims to be.
 */
export class ModuleRecord extends PickleRecord implements Buildable {
  pickleBuild(state: PyValue, ctx: HandlerContext): void {
    if (this.state !== undefined) ctx.fail(`${this.__class__} is built twice`);
    if (!(state instanceof PyDict)) ctx.fail(`${this.__class__}: expected the module's attribute dict as its state, got ${describe(state)}`);
    for (const k of (state as PyDict).keys()) {
      if (typeof k !== 'string') ctx.fail(`${this.__class__}: attribute names must be strings, got ${describe(k)}`);
    }
    this.state = state;
  }

  /** The module's attribute dict (after BUILD). */
  get attributes(): PyDict | undefined {
    return this.state instanceof PyDict ? this.state : undefined;
  }
}

function moduleHandler(fullName: string): GlobalHandler {
  const dot = fullName.lastIndexOf('.');
  const cls = new PyGlobal(fullName.slice(0, dot), fullName.slice(dot + 1));
  return {
    call: (args, ctx, kwargs) => {
      if (args.length > 0 || (kwargs !== undefined && !(kwargs instanceof PyDict && kwargs.size === 0))) {
        ctx.fail(`${fullName} called with ${args.length} argument(s): a module pickled by torch.save is created by ${fullName}.__new__ with none`);
      }
      return new ModuleRecord(cls, makeTuple([]));
    },
  };
}

export const DALLE_ENCODER_GLOBALS: ReadonlyMap<string, GlobalHandler> = new Map(DALLE_ENCODER_CLASSES.map((c) => [c, moduleHandler(c)]));
