/* pvm-bench spatial maps (--maps) in the sample browser: pvmBenchMaps(record, group) returns the
   "where it looks" panel of one record: per image its whole-image grid drawn over the thumbnail,
   a slider over generated tokens that sets the heat map to that step, and the output as tokens
   shaded by their visual mass (hover shows the value; clicking a token moves the slider there).
   Model text is only assigned through textContent / setAttribute (never innerHTML). */
window.pvmBenchMaps = function (r, g) {
  'use strict';
  var m = r.maps;
  var SVG = 'http://www.w3.org/2000/svg';
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function bytes(b64) {
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }
  function sig(x) { return String(Number(Number(x).toPrecision(3))); }
  var box = el('div', 'pm-maps');
  box.setAttribute('data-variant', r.variant);
  var band = m.layers.length ? (m.layers.length === 1 ? m.layers[0] : m.layers[0] + '–' + m.layers[m.layers.length - 1]) : '?';
  box.appendChild(el('div', 'pb-label', 'where it looks: attention on the image at each generated token ' +
    '(mean over heads and layers ' + band + '; cells darken the less they are looked at, relative to the step\'s brightest in any image)'));
  var panels = el('div', 'pm-panels');
  var grids = m.images.map(function (im) {
    var panel = el('div', 'pm-panel');
    var stage = el('div', 'pm-stage');
    var uri = g.images && g.images[im.index];
    var w = 168, h = Math.max(24, Math.round(w * im.rows / Math.max(im.cols, 1)));
    var photo = Boolean(uri && im.rows > 1);  /* a token row (no grid) is not drawn over the image */
    if (photo) {
      var img = el('img');
      img.setAttribute('src', uri);
      img.setAttribute('alt', 'image ' + (im.index + 1));
      stage.appendChild(img);
    }
    stage.style.width = w + 'px';
    stage.style.height = h + 'px';
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + im.cols + ' ' + im.rows);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('class', 'pm-heat');
    var rects = [];
    for (var c = 0; c < im.rows * im.cols; c++) {
      var rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('x', c % im.cols);
      rect.setAttribute('y', Math.floor(c / im.cols));
      rect.setAttribute('width', 1);
      rect.setAttribute('height', 1);
      rect.setAttribute('fill', photo ? '#000' : '#ff3300');
      rects.push(rect);
      svg.appendChild(rect);
    }
    stage.appendChild(svg);
    panel.appendChild(stage);
    var label = 'image ' + (im.index + 1) + ' · ' + im.label + ' ' + im.rows + '×' + im.cols +
      (im.views > 1 ? ' (1 of ' + im.views + ' views)' : '');
    panel.appendChild(el('div', 'pm-cap', label));
    if (im.note) { panel.appendChild(el('div', 'pm-cap', im.note)); }
    panels.appendChild(panel);
    return { im: im, q: bytes(im.q), rects: rects, n: im.rows * im.cols, photo: photo };
  });
  box.appendChild(panels);
  var slider = el('input', 'pm-slider');
  slider.type = 'range';
  slider.min = '0';
  slider.max = String(Math.max(m.shown - 1, 0));
  slider.value = '0';
  slider.setAttribute('aria-label', 'generated token (' + r.variant + ')');
  box.appendChild(slider);
  var caption = el('div', 'pm-caption');
  caption.setAttribute('aria-live', 'polite');
  box.appendChild(caption);
  if (m.note) { box.appendChild(el('div', 'pb-note', m.note)); }
  box.appendChild(el('div', 'pb-label', 'output by token, shaded by visual mass (hover for the value)'));
  var text = el('div', 'pm-text');
  var top = 0;
  m.mass.forEach(function (v) { if (v > top) { top = v; } });
  var spans = m.tokens.map(function (tok, i) {
    var s = el('span', 'pm-tok', tok);
    var a = top > 0 ? m.mass[i] / top : 0;
    s.style.backgroundColor = 'rgba(255, 51, 0, ' + (0.75 * a).toFixed(3) + ')';
    s.setAttribute('title', 'step ' + i + ' · visual mass ' + m.mass[i]);
    s.setAttribute('data-step', i);
    s.setAttribute('data-mass', m.mass[i]);
    if (i < m.shown) { s.addEventListener('click', function () { slider.value = String(i); show(i); }); }
    text.appendChild(s);
    return s;
  });
  box.appendChild(text);
  var current = -1;
  function show(k) {
    grids.forEach(function (gr) {
      for (var c = 0; c < gr.n; c++) {
        var v = gr.q[k * gr.n + c] / 255;  /* over the image: a spotlight (cells looked at stay clear) */
        gr.rects[c].setAttribute('fill-opacity', (gr.photo ? 0.8 * (1 - v) : 0.85 * v).toFixed(3));
        gr.rects[c].setAttribute('data-v', v.toFixed(3));
      }
    });
    if (current >= 0 && spans[current]) { spans[current].classList.remove('pm-cur'); }
    if (spans[k]) { spans[k].classList.add('pm-cur'); }
    current = k;
    caption.textContent = 'step ' + k + ' of ' + m.steps + ': token ' + JSON.stringify(m.tokens[k] || '') +
      ' · visual mass ' + m.mass[k] + ' · brightest cell ' + sig(m.peak[k]);
    box.setAttribute('data-step', k);
  }
  slider.addEventListener('input', function () { show(Number(slider.value)); });
  show(0);
  return box;
};
