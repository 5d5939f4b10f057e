/**
 * The NativeTrainer addon class (native/addon/trainer_wrap.cc over native/core/train_step.cpp):
 * one scheduled native call per micro-step (forward, loss, backward, gradient sync, clip, AdamW).
 */
import { loadNative, NativeTensorHandle } from '../native';
import type { Beit } from '../models/beit';
import type { NativeBeitInstance } from '../models/native-beit';

export interface NativeTrainerConfig {
  /** Parameter names per optimizer param group, in optimizer order; parameters in no group are frozen. */
  groups: string[][];
  betas?: [number, number];
  eps?: number;
  /** > 0: clip the gradient norm to this (clip_grad_norm_); otherwise only measure it. */
  clipGrad?: number;
  smoothing?: number;
  updateFreq?: number;
  l2Alpha?: number;
  l2Beta?: number;
  /** In (0, 1]: keep a model EMA (timm ModelEma). */
  emaDecay?: number;
  /** A GradientSyncRegistry id (distributed data parallel); 0 / undefined: none. */
  gradSyncId?: number;
}

export interface NativeStepOptions {
  first: boolean;
  last: boolean;
  lrs?: number[];
  wds?: number[];
  seed?: number;
}

export interface NativeTrainerInstance {
  ready(): NativeTensorHandle;
  step(images: NativeTensorHandle, targets: NativeTensorHandle, soft: NativeTensorHandle | null, opts: NativeStepOptions): { loss: NativeTensorHandle; gradNorm: NativeTensorHandle };
  paramNames(): string[];
  groupSizes(): number[];
  state(): { has: NativeTensorHandle; steps: NativeTensorHandle[]; expAvg: NativeTensorHandle[]; expAvgSq: NativeTensorHandle[] };
  setState(indices: number[], steps: NativeTensorHandle[], expAvg: NativeTensorHandle[], expAvgSq: NativeTensorHandle[]): NativeTensorHandle;
  grads(): NativeTensorHandle[];
  emaNames(): string[];
  emaState(): NativeTensorHandle[];
  setEma(sd: Record<string, NativeTensorHandle>): NativeTensorHandle;
  dispose(): void;
}

export interface NativeTrainerStatic {
  new (model: NativeBeitInstance, config: NativeTrainerConfig): NativeTrainerInstance;
}

export function nativeTrainer(): NativeTrainerStatic {
  return loadNative().NativeTrainer;
}

/** The live native module behind a Beit (the trainer schedules its steps on it). */
export function nativeModelOf(model: Beit): NativeBeitInstance {
  return model.nativeModule('Trainer');
}
