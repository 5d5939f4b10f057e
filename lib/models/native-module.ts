/**
 * The lifetime of an addon module wrapped by a TypeScript class (Beit, MimModel, DalleEncoder): the
 * instance until dispose(), then a clear error naming the class and the call; train/eval mode for the
 * modules that have one.
 */

/** What every addon module instance has. */
export interface NativeInstance {
  dispose(): void;
}

/** Addon modules with torch::nn's train/eval switch. */
export interface TrainableNativeInstance extends NativeInstance {
  train(mode: boolean): void;
  isTraining(): boolean;
}

export abstract class NativeModule<N extends NativeInstance> {
  /** null once disposed. */
  protected native: N | null;

  /** `label` names the class in errors ('Beit'), `noun` what it is ('model', 'encoder'). */
  protected constructor(native: N, private readonly label: string, private readonly noun = 'model') {
    this.native = native;
  }

  /** The instance for `op`; throws once disposed. */
  protected live(op: string): N {
    if (!this.native) throw new Error(`${this.label}.${op}: ${this.noun} used after dispose()`);
    return this.native;
  }

  /** Releases the native module (work already queued still completes); idempotent. */
  dispose(): void {
    this.native?.dispose();
    this.native = null;
  }
}

export abstract class TrainableNativeModule<N extends TrainableNativeInstance> extends NativeModule<N> {
  train(mode = true): this {
    this.live('train').train(mode);
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  get training(): boolean {
    return this.live('training').isTraining();
  }
}
