/**
 * The torch names a checkpoint pickle may mention, implemented as data builders: tensor rebuilders
 * produce TensorRefs (validated against their storage), storage classes and dtypes are plain values.
 * This mirrors torch.load(weights_only=True)'s allow-list; nothing else from torch is accepted.
 */
import type { GlobalHandler, HandlerContext } from './pickle';
import { DType, STORAGE_CLASS_TO_DTYPE, TORCH_DTYPE_GLOBALS } from './dtypes';
import { PyGlobal, PyValue, makeTuple } from './pyvalues';
import { StorageRef, TensorRef, viewExtent } from './tensorref';

function intTuple(v: PyValue | undefined, what: string, ctx: HandlerContext): number[] {
  if (!Array.isArray(v)) ctx.fail(`${what} must be a tuple of ints`);
  const out: number[] = [];
  for (const x of v as PyValue[]) {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) ctx.fail(`${what} must hold non-negative ints, got ${String(x)}`);
    out.push(x as number);
  }
  return out;
}

/**
 * Check a view against its storage and build the TensorRef. Every number comes from the file, so
 * ranks, extents and the storage size are all checked before anyone trusts them.
 */
export function makeTensorRef(
  storage: PyValue | undefined,
  offset: PyValue | undefined,
  size: PyValue | undefined,
  stride: PyValue | undefined,
  requiresGrad: PyValue | undefined,
  ctx: HandlerContext,
  dtypeOverride?: DType,
): TensorRef {
  if (!(storage instanceof StorageRef)) ctx.fail('tensor rebuild expects a storage (persistent id) as first argument');
  const st = storage as StorageRef;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) ctx.fail(`bad storage offset ${String(offset)}`);
  const shape = intTuple(size, 'tensor size', ctx);
  const strides = intTuple(stride, 'tensor stride', ctx);
  if (shape.length !== strides.length) ctx.fail(`size has ${shape.length} dims but stride has ${strides.length}`);
  if (shape.length > 64) ctx.fail(`tensor rank ${shape.length} is implausible`);
  if (dtypeOverride && dtypeOverride !== st.dtype) ctx.fail(`tensor dtype ${dtypeOverride} does not match storage dtype ${st.dtype}`);
  const extent = viewExtent(shape, strides, offset as number);
  if (Number.isNaN(extent) || extent > st.numel) {
    ctx.fail(`tensor view (offset ${offset}, size [${shape}], stride [${strides}]) reaches element ${extent} of storage '${st.key}' holding ${st.numel}`);
  }
  return new TensorRef({ dtype: st.dtype, shape, stride: strides, storageOffset: offset as number, storage: st, requiresGrad: requiresGrad === true });
}

function asTensor(v: PyValue | undefined, ctx: HandlerContext): TensorRef {
  if (!(v instanceof TensorRef)) ctx.fail('expected a tensor');
  return v as TensorRef;
}

const rebuildV2: GlobalHandler = {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  call: (a, ctx) => makeTensorRef(a[0], a[1], a[2], a[3], a[4], ctx),
};
const rebuildV1: GlobalHandler = {
  // Pre-1.0 torch: (storage, storage_offset, size, stride)
  call: (a, ctx) => makeTensorRef(a[0], a[1], a[2], a[3], false, ctx),
};
const rebuildParameter: GlobalHandler = {
  // (data, requires_grad, backward_hooks[, state])
  call: (a, ctx) => {
    const t = asTensor(a[0], ctx);
    t.requiresGrad = a[1] === true;
    t.isParameter = true;
    return t;
  },
};

const TORCH_GLOBALS_LIST: Array<[string, GlobalHandler]> = [
  ['torch._utils._rebuild_tensor_v2', rebuildV2],
  ['torch._utils._rebuild_tensor', rebuildV1],
  ['torch._utils._rebuild_parameter', rebuildParameter],
  ['torch._utils._rebuild_parameter_with_state', rebuildParameter],
  [
    'torch.nn.parameter.Parameter',
    {
      call: (a, ctx) => {
        const t = asTensor(a[0], ctx);
        t.requiresGrad = a[1] === undefined ? true : a[1] === true;
        t.isParameter = true;
        return t;
      },
    },
  ],
  [
    // Tensors with Python attributes / subclasses: (func, type, args, state). We rebuild through func
    // only when func is itself allow-listed, and keep the plain tensor.
    'torch._tensor._rebuild_from_type_v2',
    {
      call: (a, ctx) => {
        const fn = a[0];
        if (!(fn instanceof PyGlobal)) ctx.fail('_rebuild_from_type_v2 expects a function');
        const h = TORCH_GLOBALS.get((fn as PyGlobal).fullName);
        const call = h?.call;
        if (!call || !Array.isArray(a[2])) return ctx.fail(`_rebuild_from_type_v2 with unsupported function ${(fn as PyGlobal).fullName}`);
        return call(a[2] as PyValue[], ctx);
      },
    },
  ],
  ['torch.serialization._get_layout', { call: (a) => (typeof a[0] === 'string' ? a[0] : 'torch.strided') }],
  ['torch.Size', { call: (a) => makeTuple(Array.isArray(a[0]) ? [...(a[0] as PyValue[])] : []) }],
  [
    'torch.device',
    {
      // Kept as the device string ('cuda:0'); devices are informational for a CPU-first loader.
      call: (a, ctx) => {
        if (typeof a[0] !== 'string') ctx.fail('torch.device expects a string');
        return a[1] === undefined || a[1] === null ? (a[0] as string) : `${a[0] as string}:${String(a[1])}`;
      },
    },
  ],
  ['torch.Tensor', {}],
  ['torch.UntypedStorage', {}],
];
for (const cls of Object.keys(STORAGE_CLASS_TO_DTYPE)) TORCH_GLOBALS_LIST.push([`torch.${cls}`, {}]);
for (const name of Object.keys(TORCH_DTYPE_GLOBALS)) TORCH_GLOBALS_LIST.push([`torch.${name}`, {}]);

export const TORCH_GLOBALS: ReadonlyMap<string, GlobalHandler> = new Map(TORCH_GLOBALS_LIST);

/** dtype of a storage class global (`torch.FloatStorage`) or an untyped storage (bytes). */
export function storageDType(cls: PyValue | undefined, ctx: HandlerContext): DType {
  if (!(cls instanceof PyGlobal) || cls.module !== 'torch') ctx.fail(`expected a torch storage class, got ${cls instanceof PyGlobal ? cls.fullName : typeof cls}`);
  const g = cls as PyGlobal;
  if (g.name === 'UntypedStorage') return 'uint8';
  const d = STORAGE_CLASS_TO_DTYPE[g.name] ?? TORCH_DTYPE_GLOBALS[g.name];
  if (!d) ctx.fail(`unsupported storage type ${g.fullName}`);
  return d;
}

