/**
 * ProcessGroup: c10d collectives over Tensors (Gloo on CPU, NCCL on CUDA builds), and the
 * gradient synchronisation the Trainer takes by id (`gradSyncId`).
 *
 * Collectives return Tensors at once and run on the device's executor, in call order, so every rank
 * must issue the same collectives in the same order (as with torch.distributed). Failures (a rank
 * lost, a timeout, mismatched shapes) surface when the result is awaited, naming the cause.
 */
import { Device, Tensor } from '../tensor';
import { DistEnv, readDistEnv } from './env';
import { NativeGradSyncStats, NativeProcessGroupInstance, nativeProcessGroup } from './native';

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';
export type Backend = 'gloo' | 'nccl';

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr?: string;
  masterPort?: number;
  /** Bounds reaching the master, all ranks arriving, and each collective. Default 120 s (MOOD_DIST_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Default 'gloo'; 'nccl' needs a CUDA libtorch with NCCL and CUDA tensors. */
  backend?: Backend;
}

export interface GradientSyncOptions {
  /** Bucket size cap in bytes (DDP's default 25 MB). */
  bucketBytes?: number;
  /** false: all-reduce only after backward (for measuring what overlap hides). Default true. */
  overlap?: boolean;
}

export type GradientSyncStats = NativeGradSyncStats;

/** A gradient synchronisation registered natively; hand `id` to the Trainer as `gradSyncId`. */
export class GradientSync {
  constructor(private readonly pg: NativeProcessGroupInstance, readonly id: number) {}
  /** Buckets, how many launched during backward, synchronised backwards so far, wait time. */
  stats(): GradientSyncStats {
    return this.pg.gradientSyncStats(this.id);
  }
  release(): void {
    this.pg.releaseGradientSync(this.id);
  }
}

export function defaultTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.MOOD_DIST_TIMEOUT_MS;
  if (v === undefined || v === '') return 120_000;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`distributed: MOOD_DIST_TIMEOUT_MS='${v}' must be a positive integer (milliseconds)`);
  return n;
}

export class ProcessGroup {
  private native: NativeProcessGroupInstance | null;

  private constructor(native: NativeProcessGroupInstance, readonly backend: Backend) {
    this.native = native;
  }

  /** Which backends this build has. */
  static available(): { gloo: boolean; nccl: boolean } {
    return nativeProcessGroup().available();
  }

  /** Joins the group (rank 0 hosts the rendezvous store on masterPort). Resolves when all ranks are connected. */
  static async init(opts: ProcessGroupOptions): Promise<ProcessGroup> {
    const backend = opts.backend ?? 'gloo';
    const native = await nativeProcessGroup().create({
      rank: opts.rank,
      worldSize: opts.worldSize,
      masterAddr: opts.masterAddr ?? '127.0.0.1',
      masterPort: opts.masterPort ?? 29500,
      timeoutMs: opts.timeoutMs ?? defaultTimeoutMs(),
      backend,
    });
    return new ProcessGroup(native, backend);
  }

  get rank(): number {
    return this.live('rank').rank();
  }
  get worldSize(): number {
    return this.live('worldSize').worldSize();
  }
  /** Global rank 0: the process that writes checkpoints, logs and results. */
  get isMain(): boolean {
    return this.rank === 0;
  }

  /** A new tensor: the element-wise reduction over ranks (avg needs floating point). */
  allReduce(t: Tensor, op: ReduceOp = 'sum'): Tensor {
    return Tensor.fromNativeHandle(this.live('allReduce').allReduce(t.nativeHandle('allReduce'), op, t.device), t.device);
  }

  /** A new tensor holding rank `src`'s value on every rank (all ranks pass the same shape/dtype). */
  broadcast(t: Tensor, src = 0): Tensor {
    return Tensor.fromNativeHandle(this.live('broadcast').broadcast(t.nativeHandle('broadcast'), src, t.device), t.device);
  }

  /** Every rank's tensor, in rank order; dim 0 may differ between ranks. */
  allGather(t: Tensor): Tensor[] {
    const device: Device = t.device;
    return this.live('allGather').allGather(t.nativeHandle('allGather'), device).map((h) => Tensor.fromNativeHandle(h, device));
  }

  /**
   * Distributed evaluation: each rank holds the rows a non-shuffling DistributedSampler gave it
   * (rank r: dataset rows r, r+W, ...; the tail padded by wrapping). Returns all `total` rows in
   * dataset order, padding dropped.
   */
  allGatherOrdered(t: Tensor, total: number): Tensor {
    return Tensor.fromNativeHandle(this.live('allGatherOrdered').allGatherOrdered(t.nativeHandle('allGatherOrdered'), total, t.device), t.device);
  }

  /**
   * Overwrites the tensors in place with rank `src`'s values (coalesced per dtype): tensors that
   * share storage with a model (its state-dict entries) change the model.
   */
  async broadcastInPlace(tensors: readonly Tensor[], src = 0): Promise<void> {
    const pg = this.live('broadcastInPlace');
    const h = pg.broadcastInPlace(tensors.map((t, i) => t.nativeHandle(`broadcastInPlace: tensor ${i}`)), src, tensors[0]?.device);
    try {
      await h.whenReady();
    } finally {
      h.dispose();
    }
  }

  /**
   * DDP's start of training: every rank's parameters and buffers become rank `src`'s. Every rank
   * passes the same architecture (checked: element counts per dtype must agree).
   */
  async broadcastModel(model: { stateDict(): Map<string, Tensor> }, src = 0): Promise<void> {
    const sd = model.stateDict();
    try {
      await this.broadcastInPlace([...sd.values()], src);
    } finally {
      for (const t of sd.values()) t.dispose();
    }
  }

  /** Resolves when every rank has reached this barrier. */
  async barrier(): Promise<void> {
    const h = this.live('barrier').barrier();
    try {
      await h.whenReady();
    } finally {
      h.dispose();
    }
  }

  /** Bucketed gradient averaging for the Trainer (`gradSyncId: sync.id`). */
  createGradientSync(opts: GradientSyncOptions = {}): GradientSync {
    const pg = this.live('createGradientSync');
    return new GradientSync(pg, pg.createGradientSync(opts));
  }

  /** Leaves the group once the collectives already issued are done. Idempotent. */
  async destroy(): Promise<void> {
    const n = this.native;
    this.native = null;
    if (!n) return;
    const h = n.shutdown();
    if (h) {
      try {
        await h.whenReady();
      } finally {
        h.dispose();
      }
    }
  }

  private live(op: string): NativeProcessGroupInstance {
    if (!this.native) throw new Error(`distributed: ${op} on a process group after destroy()`);
    return this.native;
  }
}

/**
 * Joins the group described by the launcher's environment (see `mood launch`). Returns null when
 * the process was not launched distributed (no WORLD_SIZE, or WORLD_SIZE=1): single-process runs
 * need no group.
 */
export async function initFromEnv(opts: { timeoutMs?: number; backend?: Backend; env?: NodeJS.ProcessEnv } = {}): Promise<ProcessGroup | null> {
  const e: DistEnv = readDistEnv(opts.env ?? process.env);
  if (e.worldSize === 1) return null;
  return ProcessGroup.init({
    rank: e.rank,
    worldSize: e.worldSize,
    masterAddr: e.masterAddr,
    masterPort: e.masterPort,
    timeoutMs: opts.timeoutMs ?? defaultTimeoutMs(opts.env ?? process.env),
    backend: opts.backend,
  });
}
