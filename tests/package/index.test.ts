import { describe, expect, it } from 'vitest';
import * as mood from '../../lib';

// The package index is the public surface users import; every area must be reachable from it.
describe('package index', () => {
  it('exposes every area of the library', () => {
    expect(typeof mood.createModel).toBe('function');
    expect(typeof mood.data.buildDataset).toBe('function');
    expect(typeof mood.data.createLoader).toBe('function');
    expect(typeof mood.train.Trainer).toBe('function');
    expect(typeof mood.train.finetune).toBe('function');
    expect(typeof mood.distributed.initFromEnv).toBe('function');
    expect(typeof mood.pretrain.pretrain).toBe('function');
    expect(typeof mood.report.writeReport).toBe('function');
    expect(typeof mood.ood.features.evaluateOod).toBe('function');
    expect(typeof mood.ood.createDetector).toBe('function');
    expect(typeof mood.checkpoint.loadTensors).toBe('function');
    expect(typeof mood.tensorboard.TensorBoardWriter).toBe('function');
    expect(typeof mood.tensorboard.TensorBoardLogger).toBe('function');
  });
});
