/**
 * Types of the NativeProcessGroup addon class (native/addon/dist_wrap.cc) and its loader.
 */
import { loadNative, NativeTensorHandle } from '../native';

export interface NativeGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  timeoutMs: number;
  backend: 'gloo' | 'nccl';
}

export interface NativeGradSyncStats {
  buckets: number;
  launchedDuringBackward: number;
  syncs: number;
  waitMs: number;
}

export interface NativeProcessGroupInstance {
  rank(): number;
  worldSize(): number;
  // `device`: where the (possibly still pending) input lives, so the right executor runs the collective.
  allReduce(t: NativeTensorHandle, op: string, device?: string): NativeTensorHandle;
  broadcast(t: NativeTensorHandle, src: number, device?: string): NativeTensorHandle;
  allGather(t: NativeTensorHandle, device?: string): NativeTensorHandle[];
  allGatherOrdered(t: NativeTensorHandle, total: number, device?: string): NativeTensorHandle;
  broadcastInPlace(ts: NativeTensorHandle[], src: number, device?: string): NativeTensorHandle;
  barrier(): NativeTensorHandle;
  createGradientSync(opts: { bucketBytes?: number; overlap?: boolean }): number;
  gradientSyncStats(id: number): NativeGradSyncStats;
  releaseGradientSync(id: number): void;
  shutdown(): NativeTensorHandle | undefined;
}

export interface NativeProcessGroupStatic {
  create(opts: NativeGroupOptions): Promise<NativeProcessGroupInstance>;
  available(): { gloo: boolean; nccl: boolean };
}

export function nativeProcessGroup(): NativeProcessGroupStatic {
  return loadNative().NativeProcessGroup;
}
