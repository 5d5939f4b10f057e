/**
 * What the demo needs from lib/data (datasets, loaders) and lib/train (the fine-tuning optimizer
 * and schedules), loaded at run time: those layers are optional in a build (as for
 * `mood eval-features`), and the demo says which one is missing instead of failing to load. The
 * structural types below are the subset of their public API the demo uses.
 */
import * as path from 'node:path';
import type { DataLoader, ImageDataset, LoaderOptions } from '../data/types';
import type { Tensor } from '../tensor';
import type { Beit } from '../models/beit';
import { DemoError } from './options';

/** lib/data's in-memory dataset (uint8 pixels in one native tensor; subsets share it). */
export interface MemoryDataset extends ImageDataset {
  readonly pixels: Tensor;
  readonly rows: Int32Array | null;
  subset(indices: Int32Array, overrides?: { classes?: readonly string[]; targets?: Int32Array; name?: string }): MemoryDataset;
  dispose(): void;
}

export interface MemoryDatasetInit {
  name: string;
  root: string;
  split: 'train' | 'test';
  classes: readonly string[];
  targets: Int32Array;
  pixels: Tensor;
  rows?: Int32Array;
}

export interface DataModule {
  buildDataset(o: { dataSet: string; dataPath?: string; train: boolean }): Promise<ImageDataset>;
  createLoader(ds: ImageDataset, o: LoaderOptions): DataLoader;
  InMemoryDataset: new (init: MemoryDatasetInit) => MemoryDataset;
}

export interface StepOutput {
  loss: Tensor;
  gradNorm: Tensor;
}

export interface FinetuneOptimizerLike {
  setSchedule(lr: number, wd?: number): void;
  step(images: Tensor, targets: Int32Array | Tensor, opts?: { first?: boolean; last?: boolean; softTargets?: Tensor; seed?: number }): StepOutput;
  dispose(): void;
}

export interface TrainModule {
  createOptimizer(model: Beit, o: { lr: number; weightDecay: number; layerDecay?: number; clipGrad?: number; smoothing?: number }): Promise<FinetuneOptimizerLike>;
  cosineScheduler(o: { baseValue: number; finalValue: number; epochs: number; stepsPerEpoch: number; warmupEpochs?: number; warmupSteps?: number }): Float64Array;
}

function requireLib(name: string): Record<string, unknown> {
  try {
    return require(path.join(__dirname, '..', name)) as Record<string, unknown>;
  } catch (e) {
    throw new DemoError(`mood demo needs lib/${name}, which this build does not have or cannot load (${(e as Error).message.split('\n')[0]})`);
  }
}

export function loadDataModule(): DataModule {
  const m = requireLib('data');
  for (const k of ['buildDataset', 'createLoader', 'InMemoryDataset']) {
    if (typeof m[k] !== 'function') throw new DemoError(`lib/data does not export ${k}, which mood demo needs`);
  }
  return m as unknown as DataModule;
}

export function loadTrainModule(): TrainModule {
  const opt = requireLib(path.join('train', 'optimizer'));
  const sched = requireLib(path.join('train', 'schedule'));
  const F = opt.FinetuneOptimizer as { create?: (m: Beit, o: object) => Promise<FinetuneOptimizerLike> } | undefined;
  if (!F || typeof F.create !== 'function') throw new DemoError('lib/train does not export FinetuneOptimizer.create, which mood demo needs for fine-tuning (use --epochs 0 to evaluate without fine-tuning)');
  if (typeof sched.cosineScheduler !== 'function') throw new DemoError('lib/train does not export cosineScheduler');
  return {
    createOptimizer: (model, o) => F.create!(model, o),
    cosineScheduler: sched.cosineScheduler as TrainModule['cosineScheduler'],
  };
}

/** lib/pretrain's entry point, when this build has one; null otherwise (the demo then trains from scratch). */
export interface PretrainModule {
  pretrain(o: { model: Beit; loader: DataLoader; epochs: number; lr: number; onEpoch?: (e: number, loss: number) => void }): Promise<void>;
}

export function loadPretrainModule(): PretrainModule | null {
  try {
    const m = require(path.join(__dirname, '..', 'pretrain')) as Record<string, unknown>;
    return typeof m.pretrain === 'function' ? (m as unknown as PretrainModule) : null;
  } catch {
    return null;
  }
}
