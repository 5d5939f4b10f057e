/**
 * Image folder layouts: torchvision ImageFolder order (class folders sorted, files sorted within the
 * sorted os.walk, following symlinks) and flat/nested OOD folders where every image gets one label.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from './errors';

/** torchvision's IMG_EXTENSIONS (matched case-insensitively, like has_file_allowed_extension). */
export const IMG_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'];

function isImage(name: string): boolean {
  const n = name.toLowerCase();
  return IMG_EXTENSIONS.some((e) => n.endsWith(e));
}

/** Python's default str ordering (code points), which JS's default sort matches for BMP names. */
function pySort(a: string[]): string[] {
  return a.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Every image file under dir in sorted(os.walk(dir, followlinks=True)) order. */
export function walkImages(dir: string, seen = new Set<string>()): string[] {
  // os.walk yields (root, dirs, files) top-down; sorting the tuples orders by root path string.
  const roots: Array<{ root: string; files: string[] }> = [];
  const visit = (d: string): void => {
    let real: string;
    try {
      real = fs.realpathSync(d);
    } catch {
      return;
    }
    if (seen.has(real)) return; // symlink loops
    seen.add(real);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch (e) {
      throw new DataError(`cannot list ${d}: ${(e as Error).message}`);
    }
    const files: string[] = [];
    const dirs: string[] = [];
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory() || (e.isSymbolicLink() && isDir(p))) dirs.push(p);
      else if (isImage(e.name)) files.push(e.name);
    }
    roots.push({ root: d, files: pySort(files) });
    for (const sub of dirs) visit(sub);
  };
  visit(dir);
  roots.sort((a, b) => (a.root < b.root ? -1 : a.root > b.root ? 1 : 0));
  const out: string[] = [];
  for (const r of roots) for (const f of r.files) out.push(path.join(r.root, f));
  return out;
}

export interface FolderListing {
  classes: string[];
  files: string[];
  targets: Int32Array;
}

/** torchvision ImageFolder: one sub-folder per class, sorted; empty classes are an error. */
export function listImageFolder(root: string, what: string): FolderListing {
  if (!isDir(root)) throw new DataError(`${what}: folder ${root} does not exist (expected one sub-folder per class holding images)`);
  const classes = pySort(fs.readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory() || (e.isSymbolicLink() && isDir(path.join(root, e.name)))).map((e) => e.name));
  if (classes.length === 0) throw new DataError(`${what}: ${root} has no class sub-folders (expected ${root}/<class>/<image>)`);
  const files: string[] = [];
  const targets: number[] = [];
  const empty: string[] = [];
  classes.forEach((c, k) => {
    const list = walkImages(path.join(root, c));
    if (list.length === 0) empty.push(c);
    for (const f of list) {
      files.push(f);
      targets.push(k);
    }
  });
  if (empty.length)
    throw new DataError(`${what}: no images (${IMG_EXTENSIONS.join(' ')}) in class folder(s) ${empty.slice(0, 5).map((c) => path.join(root, c)).join(', ')}${empty.length > 5 ? ` and ${empty.length - 5} more` : ''}`);
  return { classes, files, targets: Int32Array.from(targets) };
}

/** An OOD set: every image under root (or root/images when present), one label. */
export function listFlatFolder(root: string, what: string): FolderListing {
  if (!isDir(root)) throw new DataError(`${what}: folder ${root} does not exist (expected images under ${root} or ${root}/images)`);
  const base = isDir(path.join(root, 'images')) ? path.join(root, 'images') : root;
  const files = walkImages(base);
  if (files.length === 0) throw new DataError(`${what}: no images (${IMG_EXTENSIONS.join(' ')}) under ${base}`);
  return { classes: ['ood'], files, targets: new Int32Array(files.length) };
}
