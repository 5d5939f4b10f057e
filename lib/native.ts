/**
 * The native addon ready for use: loadNative() loads it (lib/binding.ts, which declares its whole
 * surface) and does the one-time set-up; NativeTensorHandle is the JS side of a native tensor id.
 */
import { NativeBinding, NativeMeta, NativeTensorStatic, loadBinding } from './binding';

interface HandleRecord {
  id: number;
  /** Wrapped by a lib Tensor (for tensorStats). */
  owned: boolean;
}

let collectedOwned = 0;
// The safety net for handles nobody disposed: the GC reclaims the JS object, this frees the slot.
const handleRegistry = new FinalizationRegistry<HandleRecord>((rec) => {
  if (rec.owned) collectedOwned++;
  binding?.NativeTensor.release(rec.id);
});

/** How many Tensor-owned handles the garbage collector reclaimed without dispose(). */
export function collectedOwnedHandles(): number {
  return collectedOwned;
}

/**
 * The JS handle of one (possibly still pending) native tensor. Native functions take and return
 * these (the native side reads `id`); lib/tensor.ts's Tensor wraps one.
 */
export class NativeTensorHandle {
  /** The native table id; -1 once disposed. */
  id: number;
  private readonly rec: HandleRecord;

  constructor(id: number) {
    this.id = id;
    this.rec = { id, owned: false };
    handleRegistry.register(this, this.rec, this);
  }
  /** @internal marks the handle as a Tensor's, for tensorStats(). */
  adopt(): this {
    this.rec.owned = true;
    return this;
  }
  isReady(): boolean {
    return tensorNative().isReady(this.id);
  }
  meta(): NativeMeta {
    return tensorNative().meta(this.id);
  }
  read(): Promise<ArrayBufferView> {
    const r = tensorNative().read(this.id);
    return r instanceof Promise ? r : Promise.resolve(r);
  }
  whenReady(): Promise<void> {
    return tensorNative().whenReady(this.id);
  }
  dispose(): void {
    if (this.id < 0) return;
    handleRegistry.unregister(this);
    tensorNative().release(this.id);
    this.id = -1;
  }
  isDisposed(): boolean {
    return this.id < 0;
  }
}

function tensorNative(): NativeTensorStatic {
  return (binding ?? loadNative()).NativeTensor;
}

let binding: NativeBinding | undefined;

/** The addon, with the tensor handle class registered and the default thread count set. */
export function loadNative(): NativeBinding {
  if (binding) return binding;
  const b = loadBinding();
  b.NativeTensor.setHandleClass(NativeTensorHandle);
  configureDefaultThreads(b);
  binding = b;
  return binding;
}

/** All cores unless MOOD_NUM_THREADS says otherwise (libtorch's own default halves them). */
function configureDefaultThreads(b: NativeBinding): void {
  const env = process.env.MOOD_NUM_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new Error(`MOOD_NUM_THREADS must be a positive integer, got '${env}'`);
    b.configureThreads(n, 'MOOD_NUM_THREADS');
  } else {
    b.configureThreads(0, 'default (all cores)');
  }
}
