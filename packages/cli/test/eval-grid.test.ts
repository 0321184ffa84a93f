import { describe, expect, it } from 'vitest';
import { composeGrid, GRID_BACKGROUND, GRID_GAP, gridExtent } from '../src/eval/grid.ts';

// The --grid contact sheet: every image lands in its own cell, in row (class) and column (sample)
// order, with the gap between cells in the background colour.

const SIDE = 4;

/** An image whose every pixel says where it belongs: R = row, G = column, B = a pixel-position code. */
function cellImage(row: number, column: number): Uint8Array {
  const out = new Uint8Array(SIDE * SIDE * 3);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) out.set([100 + row, 150 + column, y * SIDE + x], (y * SIDE + x) * 3);
  }
  return out;
}

function pixel(image: { rgb: Uint8Array; width: number }, x: number, y: number): number[] {
  return [...image.rgb.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3)];
}

describe('composeGrid', () => {
  it('places rows x columns cells with a 2 px background gap between them', () => {
    const rows = Array.from({ length: 3 }, (_, r) => Array.from({ length: 5 }, (_, c) => cellImage(r, c)));
    const grid = composeGrid(rows, SIDE);
    expect(GRID_GAP).toBe(2);
    expect([grid.width, grid.height]).toEqual([5 * SIDE + 4 * 2, 3 * SIDE + 2 * 2]);
    expect([grid.width, grid.height]).toEqual([gridExtent(5, SIDE), gridExtent(3, SIDE)]);
    expect(grid.rgb.length).toBe(grid.width * grid.height * 3);

    let cellPixels = 0;
    let gapPixels = 0;
    for (let y = 0; y < grid.height; y++) {
      for (let x = 0; x < grid.width; x++) {
        const inCellX = x % (SIDE + GRID_GAP) < SIDE;
        const inCellY = y % (SIDE + GRID_GAP) < SIDE;
        if (inCellX && inCellY) {
          const r = Math.floor(y / (SIDE + GRID_GAP));
          const c = Math.floor(x / (SIDE + GRID_GAP));
          const position = (y % (SIDE + GRID_GAP)) * SIDE + (x % (SIDE + GRID_GAP));
          expect(pixel(grid, x, y)).toEqual([100 + r, 150 + c, position]);
          cellPixels++;
        } else {
          expect(pixel(grid, x, y)).toEqual([...GRID_BACKGROUND]);
          gapPixels++;
        }
      }
    }
    expect(cellPixels).toBe(15 * SIDE * SIDE);
    expect(gapPixels).toBe(grid.width * grid.height - cellPixels);
  });

  it('leaves the missing cells of a short row as background', () => {
    const grid = composeGrid([[cellImage(0, 0), cellImage(0, 1)], [cellImage(1, 0)]], SIDE, { gap: 1, background: [1, 2, 3] });
    expect([grid.width, grid.height]).toEqual([2 * SIDE + 1, 2 * SIDE + 1]);
    expect(pixel(grid, SIDE + 1, SIDE + 1)).toEqual([1, 2, 3]);
    expect(pixel(grid, 0, SIDE + 1)).toEqual([101, 150, 0]);
    expect(pixel(grid, SIDE, 0)).toEqual([1, 2, 3]);
  });

  it('refuses images of the wrong size and an empty grid', () => {
    expect(() => composeGrid([[new Uint8Array(5)]], SIDE)).toThrow(/row 0, column 0 has 5 bytes, not 4x4x3/);
    expect(() => composeGrid([], SIDE)).toThrow(/no images/);
    expect(() => composeGrid([[]], SIDE)).toThrow(/no images/);
  });
});
