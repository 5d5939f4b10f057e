/**
 * What the demo takes from lib/data (datasets, loaders), lib/train (the fine-tuning step) and
 * lib/pretrain (MIM pre-training of a Beit in place), typed by those libraries, so tests can stand in
 * for them; loaded lazily (they load libtorch).
 */
import type { InMemoryDataset, InMemoryInit } from '../data/memory';
import type { Beit } from '../models/beit';
import type { OptimizerOptions } from '../train/optimizer';
import type { TrainStep } from '../train/step';
import type { pretrain } from '../pretrain/beit-init';

/** lib/data's InMemoryDataset, as far as the demo uses it (pixels and row map; subsets share them). */
export type MemoryDataset = Pick<InMemoryDataset, 'name' | 'root' | 'split' | 'classes' | 'length' | 'targets' | 'pixels' | 'rows' | 'dispose'> & {
  subset(indices: Int32Array, overrides?: Parameters<InMemoryDataset['subset']>[1]): MemoryDataset;
};

export type MemoryDatasetInit = InMemoryInit;

export interface DataModule {
  buildDataset: (o: Pick<Parameters<typeof import('../data').buildDataset>[0], 'dataSet' | 'dataPath' | 'train'>) => ReturnType<typeof import('../data').buildDataset>;
  createLoader: typeof import('../data').createLoader;
  InMemoryDataset: new (init: MemoryDatasetInit) => MemoryDataset;
}

/** lib/train's fine-tuning step over the demo's model (the Trainer runs it). */
export interface TrainModule {
  createStep(model: Beit, o: OptimizerOptions): Promise<TrainStep>;
}

/** lib/pretrain's MIM pre-training of a Beit in place. */
export interface PretrainModule {
  pretrain: typeof pretrain;
}

/** lib/data, loaded when the demo runs (it loads libtorch). */
export async function loadDataModule(): Promise<DataModule> {
  const m = await import('../data');
  return { buildDataset: m.buildDataset, createLoader: m.createLoader, InMemoryDataset: m.InMemoryDataset };
}

/** lib/train's fine-tuning step: AdamW with layer decay, one native call per step, full checkpoints. */
export async function loadTrainModule(): Promise<TrainModule> {
  const { FinetuneStep } = await import('../train/step');
  return { createStep: (model, o) => FinetuneStep.create(model, o) };
}

export async function loadPretrainModule(): Promise<PretrainModule> {
  const { pretrain } = await import('../pretrain/beit-init');
  return { pretrain };
}
