// The generic op call (Tensor.runOp -> NativeTensor.op -> native/core/ops.cpp) takes only the
// attribute names each op declares: a misspelt or foreign name is an error at the call, naming the
// op, the name and the names the op takes, instead of being silently ignored.
import { describe, expect, it } from 'vitest';
import { Tensor } from '../../lib';

describe('op attributes', () => {
  const x = Tensor.fromArray(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);

  it('rejects an unknown name at the call, naming the op, the name and the names it takes', () => {
    expect(() => Tensor.runOp('sum', [x], { dim: 1, keepDim: true })).toThrow(
      "op 'sum': unknown attribute 'keepDim' (it takes 'dim', 'keepdim')",
    );
    expect(() => Tensor.runOp('zeros', [], { shape: [2], dtyp: 'float64' })).toThrow(
      "op 'zeros': unknown attribute 'dtyp' (it takes 'shape', 'dtype', 'device')",
    );
    expect(() => Tensor.runOp('matmul', [x, x.T], { axis: 0, dim: 1 })).toThrow(
      "op 'matmul': unknown attributes 'axis', 'dim' (it takes no attributes)",
    );
    // Ops registered outside ops.cpp (OOD kernels, data pipeline) are held to their lists too.
    expect(() => Tensor.runOp('nn_scan', [x, x], { mode: 'knn', k: 1, neighbours: 2 })).toThrow(/op 'nn_scan': unknown attribute 'neighbours' \(it takes 'mode', 'k', /);
    expect(() => Tensor.runOp('data_randperm', [], { n: 4, sead: 1 })).toThrow("op 'data_randperm': unknown attribute 'sead' (it takes 'n', 'seed')");
  });

  it('takes the declared names, and undefined values count as absent', async () => {
    const [s] = Tensor.runOp('sum', [x], { dim: 1, keepdim: true, unknownButUndefined: undefined });
    expect(s.shape).toEqual([2, 1]);
    expect(await s.toNumbers()).toEqual([6, 15]);
    const [p] = Tensor.runOp('data_randperm', [], { n: 5, seed: 3 });
    expect((await p.toNumbers()).slice().sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('answers an attribute of the wrong type on a creation op with an error, not a crash', () => {
    // The addon reads "device" and "shape" itself to place creation ops: these reads used to throw a
    // C++ exception no JS caller could catch (the process aborted).
    expect(() => Tensor.runOp('zeros', [], { shape: [2], device: 3 })).toThrow("op 'zeros': argument 'device': expected a string");
    expect(() => Tensor.runOp('ones', [], { shape: 'big' })).toThrow("op 'ones': argument 'shape': expected a list of integers");
  });
});
