/**
 * JS shapes of the Python values a checkpoint pickle can hold. Everything here is inert data:
 * no Python object is ever instantiated, unknown classes become `PickleRecord`s.
 *
 * Mapping:  None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float -> number,
 * str -> string, bytes/bytearray -> Uint8Array, list -> array, tuple -> *frozen* array,
 * dict / OrderedDict -> PyDict (a Map: keeps order and non-string keys), set/frozenset -> Set,
 * complex -> PyComplex, tensors -> TensorRef, numpy arrays -> NdArray.
 */
import type { TensorRef, StorageRef } from './tensorref';
import type { NdArray } from '../npy/ndarray';

/** A Python dict. `pyClass` says which dict type made it; `attributes` holds BUILD state (OrderedDict `_metadata`). */
export class PyDict extends Map<PyValue, PyValue> {
  pyClass: string;
  attributes?: PyValue;
  constructor(pyClass = 'builtins.dict', entries?: Iterable<readonly [PyValue, PyValue]>) {
    super(entries);
    this.pyClass = pyClass;
  }
  /** Shorthand for string-keyed lookups (`ckpt.str('model')`). */
  str(key: string): PyValue | undefined {
    return this.get(key);
  }
}

/** A module-level name the pickle referred to (a class or function), never resolved to code. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An instance of a class outside the allow-list (e.g. `argparse.Namespace`), recorded instead of
 * constructed: the constructor arguments, the BUILD state, and anything appended or set on it.
 */
export class PickleRecord {
  readonly __class__: string;
  readonly module: string;
  readonly name: string;
  args: readonly PyValue[];
  kwargs?: PyValue;
  state?: PyValue;
  listItems?: PyValue[];
  dictItems?: Array<[PyValue, PyValue]>;
  constructor(cls: PyGlobal, args: readonly PyValue[]) {
    this.__class__ = cls.fullName;
    this.module = cls.module;
    this.name = cls.name;
    this.args = args;
  }
}

export class PyComplex {
  constructor(readonly re: number, readonly im: number) {}
}

export type PyTuple = readonly PyValue[];

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | Set<PyValue>
  | PyGlobal
  | PickleRecord
  | PyComplex
  | TensorRef
  | StorageRef
  | NdArray;

/** Tuples are frozen arrays (so a writer can tell them from lists). */
export function makeTuple(items: PyValue[]): PyTuple {
  return Object.freeze(items);
}

export function isTuple(v: unknown): v is PyTuple {
  return Array.isArray(v) && Object.isFrozen(v);
}
