/* pvm-bench sample browser. Model text is only ever assigned through textContent / setAttribute
   (never innerHTML), so an output containing markup stays text. State can be preset from the URL:
   report.html#browser?q=..&task=..&variant=..&disagree=1&wrong=1&caveat=1&size=50&page=2&open=first
   (open=first opens the first sample of the page; open=TASK/ID/REPEAT opens that sample). */
(function () {
  'use strict';
  var root = document.getElementById('browser');
  var dataEl = document.getElementById('pb-data');
  if (!root || !dataEl) { return; }
  var data = JSON.parse(dataEl.textContent);
  var groups = data.groups;
  var $ = function (id) { return document.getElementById(id); };
  var ctl = { q: $('pb-q'), task: $('pb-task'), variant: $('pb-variant'), disagree: $('pb-disagree'),
              wrong: $('pb-wrong'), caveat: $('pb-caveat'), size: $('pb-size') };
  var list = $('pb-list');
  var count = $('pb-count');
  var state = { page: 0, matches: [], token: 0 };
  /* Side files (large runs): report.html holds an index (per group: task, id, repeat, disagree and
     each record's variant, score, caveats); the full groups come from chunks.dir/chunk-NNNNN.js,
     which call pvmBenchSamples(k, json) and are loaded as script elements (works from file://):
     the chunks of the page being drawn, and all of them before a text search. */
  var chunks = data.chunks || null;
  var loaded = {}, waiting = {}, pending = 0;
  function busy(delta) {  /* data-loading="1" on the section while side files load (tests wait on it) */
    pending += delta;
    if (pending > 0) { root.setAttribute('data-loading', '1'); } else { root.removeAttribute('data-loading'); }
  }
  window.pvmBenchSamples = function (k, text) {
    var full = JSON.parse(text);
    for (var i = 0; i < full.length; i++) { Object.assign(groups[k * chunks.size + i], full[i]); }
    loaded[k] = true;
    var calls = waiting[k] || [];
    delete waiting[k];
    calls.forEach(function (f) { f(); });
    busy(-1);
  };
  function ensure(indices, done) {
    if (!chunks) { done(); return; }
    var need = {};
    indices.forEach(function (i) { var k = Math.floor(i / chunks.size); if (!loaded[k]) { need[k] = true; } });
    var ks = Object.keys(need);
    var left = ks.length;
    if (!left) { done(); return; }
    ks.forEach(function (k) {
      var first = !waiting[k];
      (waiting[k] = waiting[k] || []).push(function () { left -= 1; if (left === 0) { done(); } });
      if (!first) { return; }
      var s = document.createElement('script');
      s.src = chunks.dir + '/chunk-' + ('0000' + k).slice(-5) + '.js';
      s.onerror = function () {
        delete waiting[k];
        busy(-1);
        count.textContent = 'could not load ' + s.src + ' (report.html needs its ' + chunks.dir + '/ folder next to it)';
      };
      busy(1);
      document.head.appendChild(s);
    });
  }
  function allLoaded() { return !chunks || Object.keys(loaded).length >= chunks.n; }
  var SVG = 'http://www.w3.org/2000/svg';

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function keyOf(g) { return g.task + '/' + g.id + '/' + g.repeat; }
  function fmtScore(s) { return (s === null || s === undefined) ? '–' : Number(s).toFixed(2); }
  function badgeClass(r) {
    if (r.error || r.score === null || r.score <= 0) { return 'bad'; }
    if (r.score >= 1) { return r.caveats.length ? 'warn' : 'ok'; }
    return 'part';
  }
  function shownRecords(g) {
    var v = ctl.variant.value;
    return v ? g.records.filter(function (r) { return r.variant === v; }) : g.records;
  }
  function haystack(g) {
    if (g._hay === undefined) {
      var parts = [g.task, g.id, g.target, g.prompt || '', g.meta];
      g.records.forEach(function (r) { parts.push(r.output, r.parsed || '', r.prompt || '', r.error || ''); });
      g._hay = parts.join('\n').toLowerCase();
    }
    return g._hay;
  }
  function matches(g) {
    var recs = shownRecords(g);
    if (!recs.length) { return false; }
    if (ctl.task.value && g.task !== ctl.task.value) { return false; }
    if (ctl.disagree.checked && !g.disagree) { return false; }
    if (ctl.wrong.checked && !recs.some(function (r) { return r.score === null || r.score < 1; })) { return false; }
    if (ctl.caveat.checked && !recs.some(function (r) { return r.caveats.length > 0; })) { return false; }
    var q = ctl.q.value.trim().toLowerCase();
    return !q || haystack(g).indexOf(q) !== -1;
  }

  var COLORS = ['#6b6b6b', '#2a5bd7', '#d7572a', '#2a9d57', '#9b2ad7', '#c79a00'];
  function colorOf(variant) {
    var i = data.variants.indexOf(variant);
    return COLORS[(i < 0 ? 0 : i) % COLORS.length];
  }
  function sig(x) { return String(Number(Number(x).toPrecision(3))); }
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    return e;
  }
  /* series: [{variant, curve}] drawn on shared axes: x = generated step in axes.t0..axes.t1,
     y = visual mass in 0..axes.ymax (one scale per sample, so variants compare directly). */
  /* Axes of a sparkline: a y axis (0 and the shared maximum) and an x axis (first and last step). */
  function curveAxes(svg, axes, x0, x1, y0, y1) {
    var ax = { stroke: '#999', 'stroke-width': 1, 'class': 'pb-axis' };
    svg.appendChild(svgEl('line', Object.assign({ x1: x0, y1: y0, x2: x0, y2: y1 }, ax)));
    svg.appendChild(svgEl('line', Object.assign({ x1: x0, y1: y1, x2: x1, y2: y1 }, ax)));
    [[x0 - 3, y0 + 8, sig(axes.ymax), 'end'], [x0 - 3, y1, '0', 'end'],
     [x0, y1 + 11, 't ' + Math.round(axes.t0), 'start'], [x1, y1 + 11, 't ' + Math.round(axes.t1), 'end']]
      .forEach(function (a) {
        var tx = svgEl('text', { x: a[0], y: a[1], 'font-size': 9, fill: '#666', 'text-anchor': a[3], 'class': 'pb-tick' });
        tx.textContent = a[2];
        svg.appendChild(tx);
      });
  }
  function curveSvg(series, axes, w) {
    var h = 64, pad = 4, left = 40;
    var svg = svgEl('svg', { 'class': 'pb-curve', width: w, height: h + 26, role: 'img' });
    var span = (axes.t1 - axes.t0) || 1;
    var desc = [];
    curveAxes(svg, axes, left, w - pad, pad, h - pad);
    series.forEach(function (s) {
      var t = s.curve.t, m = s.curve.m, pts = [];
      for (var i = 0; i < t.length; i++) {
        pts.push((left + (w - left - pad) * (t[i] - axes.t0) / span).toFixed(1) + ',' +
                 (pad + (h - 2 * pad) * (1 - m[i] / axes.ymax)).toFixed(1));
      }
      svg.appendChild(svgEl('polyline', { points: pts.join(' '), fill: 'none', stroke: colorOf(s.variant),
                                          'stroke-width': 1.5, 'data-variant': s.variant }));
      desc.push(s.variant + ': steps ' + Math.round(t[0]) + '–' + Math.round(t[t.length - 1]) + ', ' +
                sig(m[0]) + ' → ' + sig(m[m.length - 1]));
    });
    var title = svgEl('title', {});
    title.textContent = 'visual mass (mean over layers) vs generated step; ' + desc.join('; ');
    svg.insertBefore(title, svg.firstChild);
    var label = svgEl('text', { x: left, y: h + 23, 'font-size': 10, fill: '#555' });
    label.textContent = series.length === 1 ? desc[0].slice(desc[0].indexOf(': ') + 2) + ' · y ≤ ' + sig(axes.ymax)
      : 'step ' + Math.round(axes.t0) + '–' + Math.round(axes.t1) + ' · visual mass 0–' + sig(axes.ymax);
    svg.appendChild(label);
    return svg;
  }
  function groupAxes(recs) {
    var axes = { t0: Infinity, t1: -Infinity, ymax: 0 };
    recs.forEach(function (r) {
      if (!r.curve || !r.curve.t.length) { return; }
      axes.t0 = Math.min(axes.t0, r.curve.t[0]);
      axes.t1 = Math.max(axes.t1, r.curve.t[r.curve.t.length - 1]);
      r.curve.m.forEach(function (v) { if (v > axes.ymax) { axes.ymax = v; } });
    });
    axes.ymax = axes.ymax || 1;
    return axes;
  }

  function kv(name, value) {
    var d = el('div', 'pb-kv');
    d.appendChild(el('b', null, name + ': '));
    d.appendChild(document.createTextNode(value === null || value === undefined ? '–' : String(value)));
    return d;
  }
  function recordColumn(g, r, axes) {
    var col = el('div', 'pb-col');
    col.setAttribute('data-variant', r.variant);
    var head = el('h4', null, r.variant + ' ');
    head.appendChild(el('span', 'pb-badge ' + badgeClass(r), fmtScore(r.score) + (r.caveats.length ? ' !' : '')));
    col.appendChild(head);
    var chips = el('div');
    r.caveats.forEach(function (c) { chips.appendChild(el('span', 'pb-chip caveat', c)); });
    Object.keys(r.flags).forEach(function (k) {
      var chip = k + '=' + r.flags[k];
      if (r.caveats.indexOf(chip) === -1) { chips.appendChild(el('span', 'pb-chip ' + (r.flags[k] ? 'true' : 'false'), chip)); }
    });
    col.appendChild(chips);
    col.appendChild(kv('parsed', r.parsed));
    col.appendChild(kv('tokens', r.n + ' / ' + r.max_new + ' (' + r.finish + ')'));
    Object.keys(r.details).forEach(function (k) {
      var v = r.details[k];
      col.appendChild(kv(k, typeof v === 'object' && v !== null ? JSON.stringify(v) : v));
    });
    if (r.curve && r.curve.t.length) { col.appendChild(curveSvg([{ variant: r.variant, curve: r.curve }], axes, 300)); }
    else { col.appendChild(el('div', 'pb-note', 'no visual-mass curve recorded')); }
    if (r.prompt !== undefined) {
      col.appendChild(el('div', 'pb-label', 'prompt'));
      col.appendChild(el('pre', 'pb-prompt', r.prompt));
    }
    col.appendChild(el('div', 'pb-label', 'output'));
    col.appendChild(el('pre', 'pb-output', r.output));
    if (r.maps && window.pvmBenchMaps) { col.appendChild(window.pvmBenchMaps(r, g)); }  /* --maps: browser_maps.js */
    if (r.error) {
      col.appendChild(el('div', 'pb-label', 'error'));
      col.appendChild(el('pre', 'pb-error', r.error));
    }
    return col;
  }
  function fillBody(det, g) {
    var body = el('div', 'pb-body');
    var common = el('div', 'pb-common');
    if (g.images.length) {
      var th = el('div', 'pb-thumbs');
      g.images.forEach(function (uri, i) {
        var img = el('img');
        img.setAttribute('src', uri);
        img.setAttribute('alt', 'image ' + (i + 1) + ' of ' + g.id);
        th.appendChild(img);
      });
      common.appendChild(th);
    }
    var text = el('div', 'pb-text');
    text.appendChild(kv('target', g.target));
    if (g.distance) { text.appendChild(kv('distance (of the prompt, the same for every variant)', g.distance)); }
    if (g.meta) { text.appendChild(kv('metadata', g.meta)); }
    if (g.prompt !== null) {
      text.appendChild(el('div', 'pb-label', 'prompt (same for every variant)'));
      text.appendChild(el('pre', 'pb-prompt', g.prompt));
    }
    common.appendChild(text);
    body.appendChild(common);
    var recs = shownRecords(g);
    var axes = groupAxes(recs);
    var withCurve = recs.filter(function (r) { return r.curve && r.curve.t.length; });
    if (withCurve.length > 1) {
      var overlay = el('div', 'pb-overlay');
      overlay.appendChild(el('div', 'pb-label', 'visual mass per generated step, variants overlaid (mean over layers)'));
      overlay.appendChild(curveSvg(withCurve.map(function (r) { return { variant: r.variant, curve: r.curve }; }), axes, 480));
      var legend = el('div', 'pb-legend');
      withCurve.forEach(function (r) {
        var item = el('span', 'pb-legend-item', r.variant);
        item.style.borderColor = colorOf(r.variant);
        legend.appendChild(item);
      });
      overlay.appendChild(legend);
      body.appendChild(overlay);
    }
    var cols = el('div', 'pb-cols');
    cols.style.gridTemplateColumns = 'repeat(' + recs.length + ', minmax(0, 1fr))';
    recs.forEach(function (r) { cols.appendChild(recordColumn(g, r, axes)); });
    body.appendChild(cols);
    det.appendChild(body);
  }
  function groupElement(g) {
    var det = el('details', 'pb-group');
    det.pbGroup = g;
    det.setAttribute('data-key', keyOf(g));
    det.setAttribute('data-task', g.task);
    det.setAttribute('data-disagree', g.disagree ? '1' : '0');
    var sum = el('summary');
    if (g.images.length) {
      var mini = el('img', 'pb-mini');
      mini.setAttribute('src', g.images[0]);
      mini.setAttribute('alt', '');
      sum.appendChild(mini);
    }
    sum.appendChild(el('span', 'pb-id', g.task + ' / ' + g.id));
    sum.appendChild(el('span', 'pb-rep', 'repeat ' + g.repeat));
    sum.appendChild(el('span', 'pb-target', 'target: ' + g.target));
    if (g.distance) { sum.appendChild(el('span', 'pb-distance', g.distance)); }
    shownRecords(g).forEach(function (r) {
      var b = el('span', 'pb-badge ' + badgeClass(r),
        r.variant + ' ' + fmtScore(r.score) + (r.caveats.length ? ' !' : ''));
      b.setAttribute('data-variant', r.variant);
      if (r.caveats.length) { b.setAttribute('title', r.caveats.join(', ')); }
      sum.appendChild(b);
    });
    if (g.disagree) { sum.appendChild(el('span', 'pb-tag', 'variants disagree')); }
    det.appendChild(sum);
    det.addEventListener('toggle', function () {
      if (det.open && !det.querySelector('.pb-body')) { fillBody(det, g); }
    });
    return det;
  }

  function pages() { return Math.max(1, Math.ceil(state.matches.length / Number(ctl.size.value))); }
  function render(after) {
    var size = Number(ctl.size.value);
    state.page = Math.min(Math.max(0, state.page), pages() - 1);
    var start = state.page * size;
    var slice = state.matches.slice(start, start + size);
    var token = ++state.token;
    ensure(slice, function () { if (token === state.token) { draw(start, slice); if (after) { after(); } } });
  }
  function draw(start, slice) {
    list.textContent = '';
    var frag = document.createDocumentFragment();
    slice.forEach(function (i) { frag.appendChild(groupElement(groups[i])); });
    if (!slice.length) { frag.appendChild(el('div', 'pb-empty', 'No sample matches these filters.')); }
    list.appendChild(frag);
    var nrec = 0;
    state.matches.forEach(function (i) { nrec += shownRecords(groups[i]).length; });
    count.textContent = state.matches.length + ' of ' + groups.length + ' samples shown (' + nrec + ' of ' +
      data.n_records + ' records)';
    var label = 'page ' + (state.page + 1) + ' of ' + pages() + (slice.length ?
      ' · samples ' + (start + 1) + '–' + (start + slice.length) : '');
    Array.prototype.forEach.call(root.querySelectorAll('.pb-page'), function (e) { e.textContent = label; });
    Array.prototype.forEach.call(root.querySelectorAll('.pb-prev'), function (b) { b.disabled = state.page === 0; });
    Array.prototype.forEach.call(root.querySelectorAll('.pb-next'), function (b) { b.disabled = state.page >= pages() - 1; });
  }
  function apply(after) {
    if (ctl.q.value.trim() && !allLoaded()) {  /* the search reads every record's text */
      var token = ++state.token;
      count.textContent = 'loading every record for the search…';
      ensure(groups.map(function (g, i) { return i; }), function () { if (token === state.token) { apply(after); } });
      return;
    }
    state.matches = [];
    for (var i = 0; i < groups.length; i++) { if (matches(groups[i])) { state.matches.push(i); } }
    state.page = 0;
    render(after);
  }
  function openGroup(which) {
    var items = list.querySelectorAll('details.pb-group');
    var target = null;
    Array.prototype.forEach.call(items, function (d) { if (d.getAttribute('data-key') === which) { target = d; } });
    if (!target && which === 'first' && items.length) { target = items[0]; }
    if (target) {
      if (!target.querySelector('.pb-body')) { fillBody(target, target.pbGroup); }
      target.open = true;
      target.scrollIntoView();
    }
  }
  function fromHash() {
    var h = window.location.hash;
    var at = h.indexOf('?');
    if (h.indexOf('#browser') !== 0) { return; }
    var p = new URLSearchParams(at === -1 ? '' : h.slice(at + 1));
    if (p.has('q')) { ctl.q.value = p.get('q'); }
    ['task', 'variant', 'size'].forEach(function (k) { if (p.has(k)) { ctl[k].value = p.get(k); } });
    ['disagree', 'wrong', 'caveat'].forEach(function (k) { ctl[k].checked = p.get(k) === '1'; });
    var finish = function () { if (p.has('open')) { openGroup(p.get('open')); } else { root.scrollIntoView(); } };
    apply(function () {
      if (p.has('page')) { state.page = Number(p.get('page')) - 1; render(finish); } else { finish(); }
    });
  }

  ['q', 'task', 'variant', 'disagree', 'wrong', 'caveat', 'size'].forEach(function (k) {
    ctl[k].addEventListener(k === 'q' ? 'input' : 'change', function () { apply(); });
  });
  Array.prototype.forEach.call(root.querySelectorAll('.pb-prev'), function (b) {
    b.addEventListener('click', function () { state.page -= 1; render(function () { root.scrollIntoView(); }); });
  });
  Array.prototype.forEach.call(root.querySelectorAll('.pb-next'), function (b) {
    b.addEventListener('click', function () { state.page += 1; render(function () { root.scrollIntoView(); }); });
  });
  window.addEventListener('hashchange', fromHash);
  apply();
  fromHash();
}());
