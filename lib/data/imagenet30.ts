/**
 * ImageNet-30 from ImageNet-1k: the reference's layout (`train/<name>`, `test/<name>`) as symlinks to
 * ImageNet-1k's `train/<wnid>` and `val/<wnid>` class folders (val in class-folder layout).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from './errors';

/** Class folder name -> WordNet id (the 30 classes of ImageNet-30). */
export const IMAGENET30_WNIDS: Readonly<Record<string, string>> = {
  acorn: 'n12267677',
  airliner: 'n02690373',
  ambulance: 'n02701002',
  american_alligator: 'n01698640',
  banjo: 'n02787622',
  barn: 'n02793495',
  bikini: 'n02837789',
  digital_clock: 'n03196217',
  dragonfly: 'n02268443',
  dumbbell: 'n03255030',
  forklift: 'n03384352',
  goblet: 'n03443371',
  grand_piano: 'n03452741',
  hotdog: 'n07697537',
  hourglass: 'n03544143',
  manhole_cover: 'n03717622',
  mosque: 'n03788195',
  nail: 'n03804744',
  parking_meter: 'n03891332',
  pillow: 'n03938244',
  revolver: 'n04086273',
  rotary_dial_telephone: 'n03187595',
  schooner: 'n04147183',
  snowmobile: 'n04252077',
  soccer_ball: 'n04254680',
  stingray: 'n01498041',
  strawberry: 'n07745940',
  tank: 'n04389033',
  toaster: 'n04442312',
  volcano: 'n09472597',
};

export interface MakeImagenet30Result {
  out: string;
  created: number;
  existing: number;
}

/** Creates out/{train,test}/<name> -> imagenet1k/{train,val}/<wnid>; idempotent, never overwrites other files. */
export function makeImagenet30(imagenet1k: string, out: string): MakeImagenet30Result {
  const src = path.resolve(imagenet1k);
  const missing: string[] = [];
  for (const split of ['train', 'val'])
    for (const wnid of Object.values(IMAGENET30_WNIDS)) {
      const p = path.join(src, split, wnid);
      if (!fs.existsSync(p) || !fs.statSync(p).isDirectory()) missing.push(p);
    }
  if (missing.length)
    throw new DataError(
      `make-imagenet30: ${missing.length} class folder(s) missing in ${src} (expected ${src}/train/<wnid>/ and ${src}/val/<wnid>/, val sorted into class folders), e.g. ${missing.slice(0, 3).join(', ')}`,
    );
  let created = 0;
  let existing = 0;
  for (const [split, from] of [['train', 'train'], ['test', 'val']] as const) {
    const dir = path.join(out, split);
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, wnid] of Object.entries(IMAGENET30_WNIDS)) {
      const link = path.join(dir, name);
      const target = path.join(src, from, wnid);
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(link);
      } catch {
        st = undefined;
      }
      if (st) {
        if (st.isSymbolicLink() && path.resolve(dir, fs.readlinkSync(link)) === target) {
          existing++;
          continue;
        }
        throw new DataError(`make-imagenet30: ${link} already exists and is not a link to ${target}; remove it or choose another --out`);
      }
      fs.symlinkSync(target, link, 'dir');
      created++;
    }
  }
  return { out: path.resolve(out), created, existing };
}
