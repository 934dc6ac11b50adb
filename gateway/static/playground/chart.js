// A horizontal bar chart on a canvas: groups of bars, each group one unit, with optional reference lines.

const COLOURS = ["#2f6db5", "#d9822b", "#3a9b5c", "#9b59b6", "#c0392b", "#16a085"];

/**
 * ``groups``: [{title, unit, bars: [{label, value, colour?}], reference?: {label, value}}].
 * Each group gets its own scale, so bars of different units are never compared.
 */
export function drawBarChart(canvas, groups) {
  const context = canvas.getContext("2d");
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  const shown = groups.filter((g) => g.bars.length);
  if (!shown.length) return;
  const barHeight = 18;
  const labelWidth = 150;
  const right = canvas.width - 60;
  context.font = "12px sans-serif";
  context.textBaseline = "middle";
  let y = 10;
  for (const group of shown) {
    context.fillStyle = "#1b2430";
    context.font = "bold 12px sans-serif";
    context.fillText(`${group.title} (${group.unit})`, 8, y + 8);
    context.font = "12px sans-serif";
    y += 22;
    const values = group.bars.map((b) => b.value).concat(group.reference ? [group.reference.value] : []);
    const top = Math.max(...values.map(Math.abs), 1e-12) * 1.1;
    const scale = (right - labelWidth) / top;
    const groupTop = y;
    group.bars.forEach((bar, i) => {
      context.fillStyle = "#1b2430";
      context.fillText(bar.label, 8, y + barHeight / 2);
      context.fillStyle = bar.colour || COLOURS[i % COLOURS.length];
      context.fillRect(labelWidth, y, Math.max(1, Math.abs(bar.value) * scale), barHeight);
      context.fillStyle = "#1b2430";
      context.fillText(bar.value.toPrecision(3), labelWidth + Math.abs(bar.value) * scale + 4, y + barHeight / 2);
      y += barHeight + 6;
    });
    if (group.reference) {
      const x = labelWidth + group.reference.value * scale;
      context.strokeStyle = "#555";
      context.setLineDash([4, 3]);
      context.beginPath();
      context.moveTo(x, groupTop - 4);
      context.lineTo(x, y - 2);
      context.stroke();
      context.setLineDash([]);
      context.fillStyle = "#555";
      context.fillText(group.reference.label, Math.min(x + 4, right - 40), y + 6);
      y += 14;
    }
    y += 12;
  }
}
