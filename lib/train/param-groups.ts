/**
 * Optimizer parameter groups of the reference recipe (BEiT / MOOD `optim_factory.get_parameter_groups`
 * with `LayerDecayValueAssigner`): no weight decay for 1-D parameters, names ending in `.bias` and the
 * skip list (`pos_embed`, `cls_token`, optionally every `relative_position_bias_table`); layer-wise lr
 * scale layer_decay^(num_layers + 1 - layer_id). Groups appear in first-use order over the
 * parameters, as the reference's dict does, so the optimizer state numbering matches PyTorch's.
 */

export interface ParamGroupSpec {
  /** The reference's group key, e.g. 'layer_3_decay' (or 'decay' / 'no_decay' without layer decay). */
  name: string;
  params: string[];
  weightDecay: number;
  lrScale: number;
}

export interface ParamGroupOptions {
  weightDecay: number;
  /** < 1 turns on layer-wise lr decay (the reference builds the assigner only then). */
  layerDecay?: number;
  /** Number of transformer blocks (model.get_num_layers()). */
  numLayers: number;
  /** --disable_weight_decay_on_rel_pos_bias. */
  disableWeightDecayOnRelPosBias?: boolean;
  /** Names that do not train (e.g. --freeze_backbone): left out of every group. */
  frozen?: (name: string) => boolean;
}

/** The reference's get_layer_id_for_vit. */
export function layerIdForVit(name: string, numMaxLayer: number): number {
  if (name === 'cls_token' || name === 'mask_token' || name === 'pos_embed') return 0;
  if (name.startsWith('patch_embed')) return 0;
  if (name.startsWith('rel_pos_bias')) return numMaxLayer - 1;
  if (name.startsWith('blocks')) return Number(name.split('.')[1]) + 1;
  return numMaxLayer - 1;
}

/** LayerDecayValueAssigner values: layer_decay^(num_layers + 1 - i) for i in 0..num_layers+1. */
export function layerScales(layerDecay: number, numLayers: number): number[] {
  return Array.from({ length: numLayers + 2 }, (_, i) => layerDecay ** (numLayers + 1 - i));
}

/** The weight-decay skip list (model.no_weight_decay() plus the rel-pos tables when asked). */
export function skipList(numLayers: number, disableWeightDecayOnRelPosBias = false): Set<string> {
  const s = new Set(['pos_embed', 'cls_token']);
  if (disableWeightDecayOnRelPosBias) for (let i = 0; i < numLayers; i++) s.add(`blocks.${i}.attn.relative_position_bias_table`);
  return s;
}

/** Groups over `params` ([name, shape] in named_parameters order). */
export function parameterGroups(params: ReadonlyArray<readonly [string, readonly number[]]>, o: ParamGroupOptions): ParamGroupSpec[] {
  const skip = skipList(o.numLayers, o.disableWeightDecayOnRelPosBias);
  const scales = o.layerDecay !== undefined && o.layerDecay < 1 ? layerScales(o.layerDecay, o.numLayers) : null;
  const groups = new Map<string, ParamGroupSpec>();
  for (const [name, shape] of params) {
    if (o.frozen?.(name)) continue;
    const noDecay = shape.length === 1 || name.endsWith('.bias') || skip.has(name);
    let key = noDecay ? 'no_decay' : 'decay';
    let scale = 1;
    if (scales) {
      const id = layerIdForVit(name, scales.length);
      key = `layer_${id}_${key}`;
      scale = scales[id];
    }
    let g = groups.get(key);
    if (!g) {
      g = { name: key, params: [], weightDecay: noDecay ? 0 : o.weightDecay, lrScale: scale };
      groups.set(key, g);
    }
    g.params.push(name);
  }
  return [...groups.values()];
}
