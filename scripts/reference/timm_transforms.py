"""The training transform of MOOD's eval_with_features.py, written here from the semantics of the code it
runs (MOODv1 datasets.build_transform(is_train=True) over timm 0.3.2's create_transform,
rand_augment_transform and RandomErasing, torchvision's RandomCrop/RandomHorizontalFlip/ColorJitter) for
Debian's python3, which has torch, torchvision and PIL but no timm. Independent of mood-ood's
TypeScript/C++ implementation: it is what that implementation is checked against.

For inputs <= 32 px (the case this twin serves) build_transform replaces timm's
RandomResizedCropAndInterpolation by torchvision's RandomCrop(size, padding=4), so the chain is
  RandomCrop(32, 4) -> RandomHorizontalFlip(0.5) -> RandAugment (or ColorJitter when --aa is off)
  -> ToTensor -> Normalize(mean, std) -> RandomErasing(reprob, mode, max_count)
"""
import math
import random
import re

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torchvision import transforms

MAX_LEVEL = 10.0

# ---- ops (PIL), as timm 0.3.2 calls them ------------------------------------------------------------


def _affine(img, matrix, fill, resample):
    return img.transform(img.size, Image.AFFINE, matrix, resample=resample, fillcolor=fill)


def op_rotate(img, deg, fill, resample):
    return img.rotate(deg, resample=resample, fillcolor=fill)


def op_shear_x(img, f, fill, resample):
    return _affine(img, (1, f, 0, 0, 1, 0), fill, resample)


def op_shear_y(img, f, fill, resample):
    return _affine(img, (1, 0, 0, f, 1, 0), fill, resample)


def op_translate_x_rel(img, pct, fill, resample):
    return _affine(img, (1, 0, pct * img.size[0], 0, 1, 0), fill, resample)


def op_translate_y_rel(img, pct, fill, resample):
    return _affine(img, (1, 0, 0, 0, 1, pct * img.size[1]), fill, resample)


def op_posterize(img, bits, *_):
    return img if bits >= 8 else ImageOps.posterize(img, bits)


def op_solarize_add(img, add, *_):
    lut = [min(255, i + add) if i < 128 else i for i in range(256)]
    return img.point(lut * 3)


OPS = {
    'AutoContrast': lambda img, *_: ImageOps.autocontrast(img),
    'Equalize': lambda img, *_: ImageOps.equalize(img),
    'Invert': lambda img, *_: ImageOps.invert(img),
    'Rotate': op_rotate,
    'Posterize': op_posterize,
    'Solarize': lambda img, t, *_: ImageOps.solarize(img, t),
    'SolarizeAdd': op_solarize_add,
    'Color': lambda img, f, *_: ImageEnhance.Color(img).enhance(f),
    'Contrast': lambda img, f, *_: ImageEnhance.Contrast(img).enhance(f),
    'Brightness': lambda img, f, *_: ImageEnhance.Brightness(img).enhance(f),
    'Sharpness': lambda img, f, *_: ImageEnhance.Sharpness(img).enhance(f),
    'ShearX': op_shear_x,
    'ShearY': op_shear_y,
    'TranslateXRel': op_translate_x_rel,
    'TranslateYRel': op_translate_y_rel,
}

# _RAND_TRANSFORMS order; the increasing set swaps six level functions.
RAND_TRANSFORMS = list(OPS)
INCREASING = {'Posterize', 'Solarize', 'Color', 'Contrast', 'Brightness', 'Sharpness'}
GEOMETRIC = {'Rotate', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel'}
CHOICE_WEIGHTS_0 = {'Rotate': 0.3, 'ShearX': 0.2, 'ShearY': 0.2, 'TranslateXRel': 0.1, 'TranslateYRel': 0.1, 'Color': .025,
                    'Sharpness': 0.025, 'AutoContrast': 0.025, 'Solarize': .005, 'SolarizeAdd': .005, 'Contrast': .005,
                    'Brightness': .005, 'Equalize': .005, 'Posterize': 0, 'Invert': 0}


def level_arg(name, increasing, level, negative):
    """timm's level_to_arg for `name` at magnitude `level`; `negative` is _randomly_negate's outcome."""
    sign = -1.0 if negative else 1.0
    if name == 'Rotate':
        return sign * (level / MAX_LEVEL) * 30.0
    if name == 'Posterize':
        bits = int((level / MAX_LEVEL) * 4)
        return 4 - bits if increasing else bits
    if name == 'Solarize':
        t = int((level / MAX_LEVEL) * 256)
        return 256 - t if increasing else t
    if name == 'SolarizeAdd':
        return int((level / MAX_LEVEL) * 110)
    if name in ('Color', 'Contrast', 'Brightness', 'Sharpness'):
        return 1.0 + sign * (level / MAX_LEVEL) * 0.9 if increasing else (level / MAX_LEVEL) * 1.8 + 0.1
    if name in ('ShearX', 'ShearY'):
        return sign * (level / MAX_LEVEL) * 0.3
    if name in ('TranslateXRel', 'TranslateYRel'):
        return sign * (level / MAX_LEVEL) * 0.45
    return None


def takes_sign(name, increasing):
    return name in ('Rotate', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel') or (increasing and name in ('Color', 'Contrast', 'Brightness', 'Sharpness'))


def apply_op(img, name, arg, fill, resample):
    return OPS[name](img, arg, fill, resample)


class AugmentOp:
    """timm 0.3.2 AugmentOp: skip with p 1 - prob, magnitude ~ N(m, mstd) clipped to [0, 10]."""

    def __init__(self, name, increasing, magnitude, magnitude_std, fill, interpolation, prob=0.5):
        self.name, self.increasing, self.magnitude, self.std = name, increasing, magnitude, magnitude_std
        self.fill, self.interpolation, self.prob = fill, interpolation, prob

    def __call__(self, img):
        if self.prob < 1.0 and random.random() > self.prob:
            return img
        m = self.magnitude
        if self.std and self.std > 0:
            m = random.gauss(m, self.std)
        m = min(MAX_LEVEL, max(0, m))
        negative = random.random() > 0.5 if takes_sign(self.name, self.increasing) else False
        arg = level_arg(self.name, self.increasing, m, negative)
        resample = self.interpolation
        if isinstance(resample, (list, tuple)):
            resample = random.choice(resample)
        return apply_op(img, self.name, arg, self.fill, resample)


class RandAugment:
    def __init__(self, ops, num_layers, weights=None):
        self.ops, self.num_layers, self.weights = ops, num_layers, weights

    def __call__(self, img):
        for op in np.random.choice(self.ops, self.num_layers, replace=self.weights is None, p=self.weights):
            img = op(img)
        return img


def rand_augment_transform(config, fill, interpolation):
    """timm 0.3.2's parser: m, n, mstd, inc (any value: bool of the string), w."""
    parts = config.split('-')
    assert parts[0] == 'rand'
    magnitude, num_layers, std, increasing, weight_idx = MAX_LEVEL, 2, 0.0, False, None
    for c in parts[1:]:
        cs = re.split(r'(\d.*)', c)
        if len(cs) < 2:
            continue
        key, val = cs[:2]
        if key == 'mstd':
            std = float(val)
        elif key == 'inc':
            increasing = increasing or bool(val)
        elif key == 'm':
            magnitude = int(val)
        elif key == 'n':
            num_layers = int(val)
        elif key == 'w':
            weight_idx = int(val)
        else:
            raise ValueError('unknown RandAugment section ' + c)
    ops = [AugmentOp(n, increasing and n in INCREASING, magnitude, std, fill, interpolation) for n in RAND_TRANSFORMS]
    weights = None
    if weight_idx is not None:
        w = np.array([CHOICE_WEIGHTS_0[n] for n in RAND_TRANSFORMS])
        weights = w / w.sum()
    return RandAugment(ops, num_layers, weights)


class RandomErasing:
    """timm 0.3.2 RandomErasing on one normalised CHW tensor."""

    def __init__(self, probability, mode='const', max_count=1, min_area=0.02, max_area=1 / 3, min_aspect=0.3):
        self.p, self.mode, self.max_count = probability, mode.lower(), max_count
        self.min_area, self.max_area = min_area, max_area
        self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))

    def __call__(self, x):
        if random.random() > self.p:
            return x
        c, H, W = x.shape
        count = 1 if self.max_count == 1 else random.randint(1, self.max_count)
        for _ in range(count):
            for _attempt in range(10):
                target = random.uniform(self.min_area, self.max_area) * H * W / count
                aspect = math.exp(random.uniform(*self.log_aspect))
                h = int(round(math.sqrt(target * aspect)))
                w = int(round(math.sqrt(target / aspect)))
                if w < W and h < H:
                    top, left = random.randint(0, H - h), random.randint(0, W - w)
                    if self.mode == 'pixel':
                        fill = torch.empty((c, h, w), dtype=x.dtype).normal_()
                    elif self.mode == 'rand':
                        fill = torch.empty((c, 1, 1), dtype=x.dtype).normal_()
                    else:
                        fill = torch.zeros((c, 1, 1), dtype=x.dtype)
                    x[:, top:top + h, left:left + w] = fill
                    break
        return x


INTERPOLATION = {'bicubic': Image.BICUBIC, 'bilinear': Image.BILINEAR, 'random': (Image.BILINEAR, Image.BICUBIC)}


def build_train_transform(input_size=32, aa='rand-m9-mstd0.5-inc1', color_jitter=0.4, train_interpolation='bicubic',
                          reprob=0.25, remode='pixel', recount=1, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    """build_transform(is_train=True) at eval_with_features.py's argparse defaults (input <= 32 px)."""
    assert input_size <= 32, 'this twin covers the <= 32 px branch (RandomCrop instead of RandomResizedCrop)'
    tfl = [transforms.RandomCrop(input_size, padding=4), transforms.RandomHorizontalFlip(p=0.5)]
    fill = tuple(min(255, round(255 * m)) for m in mean)
    if aa:
        tfl.append(rand_augment_transform(aa, fill, INTERPOLATION[train_interpolation]))
    elif color_jitter is not None:
        tfl.append(transforms.ColorJitter(float(color_jitter), float(color_jitter), float(color_jitter)))
    tfl += [transforms.ToTensor(), transforms.Normalize(torch.tensor(mean), torch.tensor(std))]
    if reprob > 0:
        tfl.append(RandomErasing(reprob, mode=remode, max_count=recount))
    return transforms.Compose(tfl)


def build_eval_transform(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    """build_transform(is_train=False) for inputs <= 32 px: no resize, no crop."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])


def replay(img, decisions, fill=(128, 128, 128), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), erase_mode='const', jitter=False):
    """The training chain for a <= 32-px RGB PIL image with every random choice given instead of drawn:
    decisions = {crop: [top, left], flip: 0|1, ops: [[index into RAND_TRANSFORMS, argument, PIL filter]],
    erase: [[top, left, h, w]]}. With jitter=True the Brightness/Contrast/Color ops go through
    torchvision's ColorJitter functions (adjust_brightness/contrast/saturation) instead. Erased boxes
    get zeros ('const'); other modes' random values cannot be replayed (left as they are)."""
    from torchvision.transforms import functional as F
    size = img.size[0]
    img = F.crop(F.pad(img, 4, fill=0), decisions['crop'][0], decisions['crop'][1], size, size)
    if decisions['flip']:
        img = F.hflip(img)
    tv = {'Brightness': F.adjust_brightness, 'Contrast': F.adjust_contrast, 'Color': F.adjust_saturation}
    for idx, arg, resample in decisions['ops']:
        name = RAND_TRANSFORMS[int(idx)]
        if name in ('Posterize', 'Solarize', 'SolarizeAdd'):
            arg = int(arg)
        img = tv[name](img, arg) if jitter and name in tv else apply_op(img, name, arg, tuple(fill), int(resample))
    x = F.normalize(F.to_tensor(img), mean, std)
    if erase_mode == 'const':
        for t, l, h, w in decisions.get('erase', []):
            x[:, t:t + h, l:l + w] = 0
    return x
