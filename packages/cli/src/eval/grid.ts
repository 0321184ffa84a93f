// The contact sheet `pixelflow eval --grid` writes: one row per class, one column per sample,
// square images separated by a dark gap, so that a glance shows what each class looks like and
// which ones fail.

/** Gap between cells, in pixels. */
export const GRID_GAP = 2;
/** The gap's colour: dark, but not black, so that black digit backgrounds still show their edges. */
export const GRID_BACKGROUND: readonly [number, number, number] = [32, 32, 32];

export interface RgbImage {
  /** RGB bytes [height, width, 3]. */
  rgb: Uint8Array;
  width: number;
  height: number;
}

export interface GridOptions {
  gap?: number;
  background?: readonly [number, number, number];
}

/** Width or height of a grid of `cells` cells of `side` pixels with `gap` between neighbours. */
export function gridExtent(cells: number, side: number, gap = GRID_GAP): number {
  return cells * side + Math.max(0, cells - 1) * gap;
}

/**
 * Lays out square RGB images of `side` pixels: `rows[r][c]` ([side, side, 3] bytes) goes to row
 * r, column c. Rows may be shorter than the longest; their missing cells stay background.
 */
export function composeGrid(rows: readonly (readonly Uint8Array[])[], side: number, options: GridOptions = {}): RgbImage {
  const gap = options.gap ?? GRID_GAP;
  const background = options.background ?? GRID_BACKGROUND;
  if (!Number.isSafeInteger(side) || side < 1) throw new RangeError(`grid: side must be a positive integer, not ${side}`);
  if (!Number.isSafeInteger(gap) || gap < 0) throw new RangeError(`grid: gap must be an integer >= 0, not ${gap}`);
  const columns = Math.max(0, ...rows.map((row) => row.length));
  if (rows.length === 0 || columns === 0) throw new RangeError('grid: there are no images to lay out');
  const width = gridExtent(columns, side, gap);
  const height = gridExtent(rows.length, side, gap);
  const rgb = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) rgb.set(background, p * 3);
  const rowBytes = side * 3;
  rows.forEach((row, r) => {
    row.forEach((image, c) => {
      if (image.length !== side * side * 3) {
        throw new RangeError(`grid: image at row ${r}, column ${c} has ${image.length} bytes, not ${side}x${side}x3`);
      }
      const left = c * (side + gap);
      const top = r * (side + gap);
      for (let y = 0; y < side; y++) {
        rgb.set(image.subarray(y * rowBytes, (y + 1) * rowBytes), ((top + y) * width + left) * 3);
      }
    });
  });
  return { rgb, width, height };
}
