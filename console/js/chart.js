// Attempts per minute over the last hour as stacked bars (succeeded below, failed above),
// drawn as inline SVG with presentation attributes only (the CSP allows no inline style).
const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  if (text !== undefined) el.textContent = text;
  return el;
}

// A round axis top at or above `max`: 1, 2, 5, 10, 20, 50…
function niceTop(max) {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

export function attemptsChart(minutes) {
  const width = 720;
  const height = 200;
  const left = 44;
  const bottom = 22;
  const top = 8;
  const plotW = width - left - 8;
  const plotH = height - top - bottom;
  const max = niceTop(Math.max(0, ...minutes.map((m) => m.attempts)));
  const root = svg('svg', {
    viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
    'aria-label': 'Attempts per minute over the last hour',
  });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH - fraction * plotH;
    root.append(svg('line', { x1: left, x2: width - 8, y1: y, y2: y, class: 'grid' }));
    root.append(svg('text', { x: left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' },
      String(Math.round(max * fraction))));
  }
  const slot = plotW / Math.max(1, minutes.length);
  minutes.forEach((m, i) => {
    const x = left + i * slot + 1;
    const w = Math.max(1, slot - 2);
    const okH = (m.succeeded / max) * plotH;
    const failH = (m.failed / max) * plotH;
    const base = top + plotH;
    const title = `${m.minute.slice(11, 16)} UTC: ${m.attempts} attempts, ${m.succeeded} succeeded, ${m.failed} failed`;
    const group = svg('g', {});
    group.append(svg('title', {}, title));
    if (okH > 0) group.append(svg('rect', { x, y: base - okH, width: w, height: okH, class: 'ok' }));
    if (failH > 0) {
      group.append(svg('rect', { x, y: base - okH - failH, width: w, height: failH, class: 'fail' }));
    }
    // An invisible full-height target so hovering any minute shows its numbers.
    group.append(svg('rect', { x, y: top, width: w, height: plotH, class: 'hover' }));
    root.append(group);
    if (i % 10 === 0 || i === minutes.length - 1) {
      const anchor = i === minutes.length - 1 ? 'end' : 'middle';
      root.append(svg('text', { x: i === minutes.length - 1 ? x + w : x + w / 2, y: height - 6, 'text-anchor': anchor, class: 'axis' },
        m.minute.slice(11, 16)));
    }
  });
  return root;
}
