/**
 * What the demo needs from lib/data (datasets, loaders), lib/train (the fine-tuning optimizer and
 * schedules) and lib/pretrain (MIM pre-training of a Beit in place): the subset of their public API
 * the demo uses, as interfaces, so tests can stand in for them; loaded lazily (they load libtorch).
 */
import type { DataLoader, ImageDataset, LoaderOptions } from '../data/types';
import type { Tensor } from '../tensor';
import type { Beit } from '../models/beit';

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
  /**
   * Optional full checkpoints (weights + AdamW moments) so a resumed run continues exactly; without
   * them the demo saves weights only and the moments restart on resume.
   */
  saveCheckpoint?(file: string, model: Beit, optimizer: FinetuneOptimizerLike, epoch: number): Promise<void>;
  loadCheckpoint?(file: string, model: Beit, optimizer: FinetuneOptimizerLike): Promise<void>;
  createOptimizer(model: Beit, o: { lr: number; weightDecay: number; layerDecay?: number; clipGrad?: number; smoothing?: number }): Promise<FinetuneOptimizerLike>;
  cosineScheduler(o: { baseValue: number; finalValue: number; epochs: number; stepsPerEpoch: number; warmupEpochs?: number; warmupSteps?: number }): Float64Array;
}

/** lib/data, loaded when the demo runs (it loads libtorch). */
export async function loadDataModule(): Promise<DataModule> {
  const m = await import('../data');
  return { buildDataset: m.buildDataset, createLoader: m.createLoader, InMemoryDataset: m.InMemoryDataset };
}

/** lib/train's optimizer and schedule. */
export async function loadTrainModule(): Promise<TrainModule> {
  const [{ FinetuneOptimizer }, { cosineScheduler }, ck] = await Promise.all([import('../train/optimizer'), import('../train/schedule'), import('../train/checkpoint')]);
  const real = (o: FinetuneOptimizerLike) => {
    if (!(o instanceof FinetuneOptimizer)) throw new TypeError('lib/train checkpoints need lib/train optimizers');
    return o;
  };
  return {
    createOptimizer: (model, o) => FinetuneOptimizer.create(model, o),
    cosineScheduler,
    saveCheckpoint: async (file, model, optimizer, epoch) => {
      await ck.saveTrainCheckpoint(file, { model, optimizer: real(optimizer), epoch, args: { source: 'mood demo' } });
    },
    loadCheckpoint: async (file, model, optimizer) => {
      const info = await ck.loadTrainCheckpoint(file, model, ck.finetuneOptimizerState(real(optimizer)));
      if (!info.restoredOptimizer) throw new Error(`${file}: no optimizer state to resume from`);
    },
  };
}

/** The entry point of lib/pretrain the demo uses: MIM pre-training of a Beit in place. */
export interface PretrainModule {
  pretrain(o: { model: Beit; loader: DataLoader; epochs: number; lr: number; seed?: number; quiet?: boolean; onEpoch?: (epoch: number, loss: number) => void }): Promise<void>;
}

export async function loadPretrainModule(): Promise<PretrainModule> {
  const { pretrain } = await import('../pretrain/beit-init');
  return { pretrain };
}
