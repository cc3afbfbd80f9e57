// The visual seat-layout editor: rows (label, category, seats) and aisles, drawn as the seat
// map customers will see. It produces exactly the `rows` the screens API takes
// ({label, category, seats, aisles_after}, docs/api.md "Admin and theater managers"); the
// server checks them with the one layout rule (docs/architecture.md, "Seat layouts").

import { h, replace } from '../ui.js';

const ROWS_MAX = 100;
const SEATS_MAX = 200;

/** Row label for row index `r`: A..Z, then AA, AB, ... */
export function rowLabel(r) {
  return r < 26 ? String.fromCharCode(65 + r) : rowLabel(Math.floor(r / 26) - 1) + rowLabel(r % 26);
}

/** A grid of `rows` x `seats` in one category, aisles after the given seat numbers. */
export function generate(rows, seats, aisles, category) {
  return Array.from({ length: rows }, (_, r) => ({
    label: rowLabel(r), category, seats, aisles_after: aisles.filter((a) => a > 0 && a < seats),
  }));
}

/**
 * Mounts an editor in `box`, starting from `rows` (a screen's existing rows, or empty).
 * Returns {rows(): the current rows, categories(): their categories in order}.
 */
export function layoutEditor(box, initial) {
  let rows = initial && initial.length ? initial.map((r) => ({ ...r, aisles_after: [...r.aisles_after] }))
    : generate(6, 12, [4, 8], 'standard');

  const nRows = h('input', { id: 'gen-rows', type: 'number', min: '1', max: String(ROWS_MAX), value: String(rows.length) });
  const nSeats = h('input', { id: 'gen-seats', type: 'number', min: '1', max: String(SEATS_MAX), value: String(rows[0].seats) });
  const aisles = h('input', { id: 'gen-aisles', value: rows[0].aisles_after.join(', '), placeholder: 'e.g. 4, 8' });
  const category = h('input', { id: 'gen-category', value: rows[0].category });
  const list = h('div', { class: 'rows-editor', id: 'rows-editor' });
  const preview = h('div', { class: 'seatmap preview', id: 'layout-preview', role: 'group', 'aria-label': 'Layout preview' });
  const summary = h('p', { class: 'meta', id: 'layout-summary', 'aria-live': 'polite' });
  const datalist = h('datalist', { id: 'layout-categories' });

  function parseAisles(text) {
    return text.split(/[\s,]+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 0);
  }

  function draw() {
    replace(list, rows.map((row, i) => {
      const label = h('input', { class: 'label', value: row.label, 'aria-label': `Row ${i + 1} label`, maxlength: '3' });
      const cat = h('input', { value: row.category, 'aria-label': `Row ${row.label} category`, list: 'layout-categories', dataset: { row: row.label } });
      const seats = h('input', { type: 'number', min: '1', max: String(SEATS_MAX), value: String(row.seats), 'aria-label': `Row ${row.label} seats` });
      // Edits redraw only the preview, so the field being typed in stays where it is.
      label.addEventListener('change', () => { row.label = label.value.trim(); drawPreview(); });
      cat.addEventListener('change', () => { row.category = cat.value.trim(); drawPreview(); });
      seats.addEventListener('change', () => {
        row.seats = Math.max(1, Math.min(SEATS_MAX, Number(seats.value) || 1));
        row.aisles_after = row.aisles_after.filter((a) => a < row.seats);
        drawPreview();
      });
      return h('div', { class: 'editor-row' },
        label, cat, seats, h('span', { class: 'meta' }, 'seats'),
        h('button', { type: 'button', class: 'secondary small', 'aria-label': `Remove row ${row.label}`, onclick: () => { rows.splice(i, 1); draw(); } }, '✕'));
    }),
    datalist,
    h('button', {
      type: 'button', class: 'secondary small', id: 'add-row', onclick: () => {
        const last = rows[rows.length - 1];
        rows.push({ label: rowLabel(rows.length), category: last ? last.category : 'standard', seats: last ? last.seats : 10, aisles_after: last ? [...last.aisles_after] : [] });
        draw();
      },
    }, '+ Add row'));
    drawPreview();
  }

  function drawPreview() {
    const cats = categories();
    replace(datalist, cats.map((c) => h('option', { value: c })));
    replace(preview, h('div', { class: 'screen', 'aria-hidden': 'true' }, 'Screen'), rows.map((row) => h('div', { class: 'row' },
      h('span', { class: 'row-label' }, row.label),
      h('div', { class: 'row-seats' }, Array.from({ length: row.seats }, (_, s) => {
        const n = s + 1;
        const aisle = row.aisles_after.includes(n);
        const seat = h('button', {
          type: 'button', class: `seat available cat-${cats.indexOf(row.category) % 6}`,
          'aria-label': `Row ${row.label} seat ${n}, ${row.category}${aisle ? ', aisle after' : ''}. Toggle an aisle after it`,
          'aria-pressed': String(aisle), dataset: { seat: `${row.label}${n}` },
          onclick: () => {
            if (n === row.seats) return; // An aisle lies inside a row, not after its last seat.
            row.aisles_after = aisle ? row.aisles_after.filter((a) => a !== n) : [...row.aisles_after, n].sort((a, b) => a - b);
            drawPreview();
            preview.querySelector(`[data-seat="${row.label}${n}"]`).focus();
          },
        }, String(n));
        return n < row.seats && aisle ? [seat, h('span', { class: 'aisle' })] : seat;
      })))));
    const seats = rows.reduce((sum, r) => sum + r.seats, 0);
    summary.textContent = `${rows.length} rows, ${seats} seats; categories: ${cats.join(', ') || 'none'}. Click a seat to add or remove an aisle after it.`;
  }

  function categories() {
    return [...new Set(rows.map((r) => r.category).filter(Boolean))];
  }

  const apply = h('button', {
    type: 'button', class: 'secondary', id: 'gen-apply', onclick: () => {
      const r = Math.max(1, Math.min(ROWS_MAX, Number(nRows.value) || 1));
      const s = Math.max(1, Math.min(SEATS_MAX, Number(nSeats.value) || 1));
      rows = generate(r, s, parseAisles(aisles.value), category.value.trim() || 'standard');
      draw();
    },
  }, 'Lay out rows');

  replace(box,
    h('fieldset', {}, h('legend', {}, 'Quick layout'),
      h('div', { class: 'editor-row' },
        h('label', { for: 'gen-rows' }, 'Rows'), nRows,
        h('label', { for: 'gen-seats' }, 'Seats per row'), nSeats,
        h('label', { for: 'gen-aisles' }, 'Aisles after seat'), aisles,
        h('label', { for: 'gen-category' }, 'Category'), category, apply)),
    h('fieldset', {}, h('legend', {}, 'Rows (label, category, seats)'), list),
    summary,
    h('div', { class: 'map-scroll' }, preview));
  draw();
  return {
    rows: () => rows.map((r) => ({ label: r.label, category: r.category, seats: r.seats, aisles_after: [...r.aisles_after] })),
    categories,
  };
}
