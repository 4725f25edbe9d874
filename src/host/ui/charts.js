// Graphs of a history from the daemon (GET /v1/vms/NAME/history or
// /v1/host/history: columns t, cpuShare, mips, ...) drawn with uPlot, which is
// served from node_modules like xterm.js. One chart per quantity; a chart is
// made once and then only given new data, so a refresh does not flicker.

import uPlot from './vendor/uPlot.esm.js';
import { fmtBytes } from './format.js';

const COLORS = ['#6cb6ff', '#e3b341', '#7ee787', '#ff7b72'];

/** The charts of one history: [title, unit formatter, [field, label]...]. */
export const CHARTS = [
  ['CPU (cores)', (v) => v.toFixed(2), [['cpuShare', 'cores used']]],
  ['MIPS', (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)), [['mips', 'MIPS']]],
  ['Memory touched', (v) => fmtBytes(v * 1048576), [['memoryTouchedMiB', 'MiB backed']]],
  ['Disk', (v) => `${fmtBytes(v)}/s`, [['diskReadBps', 'read'], ['diskWriteBps', 'write']]],
  ['Network', (v) => `${fmtBytes(v)}/s`, [['netRxBps', 'received'], ['netTxBps', 'sent']]],
];

/** A set of charts in `box` (an element); call update(history) with each new history. */
export class ChartSet {
  constructor(box) {
    this.box = box;
    this.plots = [];
    this.onResize = () => this.resize();
    window.addEventListener('resize', this.onResize);
  }

  width() {
    // Two charts a row on a wide screen, one on a phone.
    const w = this.box.clientWidth || 600;
    return Math.max(240, Math.floor(w >= 900 ? w / 2 - 16 : w - 8));
  }

  build(history) {
    this.box.textContent = '';
    for (const [title, fmt, fields] of CHARTS) {
      const cell = document.createElement('div');
      cell.className = 'chart';
      cell.dataset.chart = fields[0][0];
      this.box.append(cell);
      const opts = {
        title,
        width: this.width(),
        height: 160,
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max, fmt === CHARTS[0][1] ? 0.1 : 1) * 1.1] } },
        axes: [
          { stroke: '#8a93a3', grid: { stroke: '#2c313a' }, ticks: { stroke: '#2c313a' } },
          { stroke: '#8a93a3', grid: { stroke: '#2c313a' }, ticks: { stroke: '#2c313a' }, size: 70, values: (u, vals) => vals.map((v) => fmt(v)) },
        ],
        series: [{}, ...fields.map(([, label], i) => ({ label, stroke: COLORS[i], width: 1.5, value: (u, v) => (v == null ? '-' : fmt(v)), spanGaps: false }))],
      };
      this.plots.push({ plot: new uPlot(opts, this.data(history, fields), cell), fields });
    }
  }

  data(history, fields) {
    return [history.t.map((t) => t / 1000), ...fields.map(([f]) => history[f])];
  }

  update(history) {
    if (this.plots.length === 0) return this.build(history);
    for (const { plot, fields } of this.plots) plot.setData(this.data(history, fields));
  }

  resize() {
    for (const { plot } of this.plots) plot.setSize({ width: this.width(), height: 160 });
  }

  /** Points drawn so far (the samples of the longest series). */
  points() {
    return this.plots.length ? this.plots[0].plot.data[0].length : 0;
  }

  destroy() {
    window.removeEventListener('resize', this.onResize);
    for (const { plot } of this.plots) plot.destroy();
    this.plots = [];
    this.box.textContent = '';
  }
}
