// The regions map: regions coloured by the chosen figure, drilled down to a region's provinces
// and stores; the same figures in the table beside it (the map's text alternative, keyboard
// operable). Data: /dashboard/api/map (figures), the shipped GeoJSON (shapes).
"use strict";
(() => {
  // Kept in step with CANARY_SHIFT in scripts/geo/build.mjs: the islands are drawn this many
  // degrees east and north of where they are, so stores there are moved alike.
  const CANARY_SHIFT = [5, 7];
  const CANARY_BOX = [-18.5, 27.4, -13.2, 29.6];
  const REFRESH_MS = 60_000;
  const FIGURES = {
    tickets: { label: "Tickets", format: (v) => String(v), palette: "blue" },
    wait_median_min: { label: "Median wait", format: (v) => `${v.toFixed(1)} min`, palette: "orange" },
    nps: { label: "NPS", format: (v) => String(Math.round(v)), palette: "blue" },
    conversion_pct: { label: "Campaign conversion", format: (v) => `${v.toFixed(1)} %`, palette: "blue" },
  };
  // ColorBrewer's sequential Blues and Oranges, 5 classes (light to dark).
  const PALETTES = {
    blue: ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"],
    orange: ["#feedde", "#fdbe85", "#fd8d3c", "#e6550d", "#a63603"],
  };
  const NO_DATA = "#d9d9d9";

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, children = []) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };

  let map, regionLayer, detailLayer, frame;
  let shapes = { regions: null, provinces: null };
  let data = null;
  const params = new URLSearchParams(location.search);
  const state = {
    figure: FIGURES[params.get("figure")] ? params.get("figure") : "tickets",
    days: ["1", "7", "30", "90", "365"].includes(params.get("days")) ? params.get("days") : "30",
    region: params.get("region") || null,
  };

  function showProblem(text) {
    $("problem").textContent = text;
    $("problem").hidden = !text;
  }

  function setLive(s, text) {
    $("live").dataset.state = s;
    $("live").textContent = text;
  }

  function remember() {
    const q = new URLSearchParams({ figure: state.figure, days: state.days });
    if (state.region) q.set("region", state.region);
    history.replaceState(null, "", `?${q}`);
  }

  function regionName(code) {
    const f = shapes.regions.features.find((x) => x.properties.iso === code);
    return f ? f.properties.name : code;
  }

  function value(figures) {
    const v = figures[state.figure];
    return v === null || v === undefined ? null : v;
  }

  function shown(v) {
    return v === null ? "no data" : FIGURES[state.figure].format(v);
  }

  // A class bound as the table would show it (tickets are whole; the rest to a tenth).
  function bound(v) {
    const f = FIGURES[state.figure];
    return f.format(state.figure === "tickets" ? Math.round(v) : Math.round(v * 10) / 10);
  }

  // The colour classes of the values shown: one per value when there are at most five
  // distinct ones (a legend of exact values), else five equal intervals from the smallest to
  // the largest. `entries` are the legend's [colour, text] in order.
  function classes(values) {
    const vs = values.filter((v) => v !== null);
    if (!vs.length) return null;
    const palette = PALETTES[FIGURES[state.figure].palette];
    const distinct = [...new Set(vs)].sort((a, b) => a - b);
    if (distinct.length <= palette.length) {
      const last = distinct.length - 1;
      const colourOf = new Map(distinct.map((v, i) =>
        [v, palette[last === 0 ? palette.length - 1 : Math.round((i * (palette.length - 1)) / last)]]));
      return {
        entries: distinct.map((v) => [colourOf.get(v), shown(v)]),
        colour: (v) => (v === null ? NO_DATA : colourOf.get(v) || NO_DATA),
      };
    }
    const lo = distinct[0], hi = distinct[distinct.length - 1];
    const step = (hi - lo) / palette.length;
    return {
      entries: palette.map((c, i) => [c, `${bound(lo + i * step)} – ${bound(i === palette.length - 1 ? hi : lo + (i + 1) * step)}`]),
      colour: (v) => (v === null ? NO_DATA : palette[Math.min(palette.length - 1, Math.floor((v - lo) / step))]),
    };
  }

  function legend(cls) {
    const item = (colour, text) => {
      const sw = el("span", { class: "swatch", "aria-hidden": "true" });
      sw.style.background = colour;
      return el("li", {}, [sw, text]);
    };
    const items = cls ? cls.entries.map(([c, t]) => item(c, t)) : [];
    items.push(item(NO_DATA, "No data or no store"));
    $("legend").replaceChildren(...items);
  }

  function place(store) {
    if (store.latitude === null || store.longitude === null) return null;
    let [lon, lat] = [store.longitude, store.latitude];
    if (lon >= CANARY_BOX[0] && lon <= CANARY_BOX[2] && lat >= CANARY_BOX[1] && lat <= CANARY_BOX[3]) {
      lon += CANARY_SHIFT[0];
      lat += CANARY_SHIFT[1];
    }
    return [lat, lon];
  }

  function ensureMap() {
    if (map) return;
    // No animations: the figures are what matters, and nothing moves for those who asked
    // for less motion.
    map = L.map("map", {
      zoomSnap: 0.25, attributionControl: false, minZoom: 4, maxZoom: 15,
      zoomAnimation: false, fadeAnimation: false, markerZoomAnimation: false,
    });
    const [w, s, e, n] = CANARY_BOX;
    frame = L.rectangle([[s + CANARY_SHIFT[1], w + CANARY_SHIFT[0]], [n + CANARY_SHIFT[1], e + CANARY_SHIFT[0]]],
      { color: "#374151", weight: 1, dashArray: "4 3", fill: false, interactive: false }).addTo(map);
  }

  function drawRegions() {
    const byCode = new Map(data.regions.map((r) => [r.region, r]));
    const cls = classes(data.regions.map((r) => value(r.figures)));
    if (!state.region) legend(cls);
    if (regionLayer) regionLayer.remove();
    regionLayer = L.geoJSON(shapes.regions, {
      style: (f) => {
        // Drilled down, the regions step back (the stores carry the colours, on their own
        // scale in the legend) and the chosen one is outlined.
        if (state.region) {
          const chosen = f.properties.iso === state.region;
          return { fillColor: chosen ? "#ffffff" : "#e5e7eb", fillOpacity: 0.9,
            color: chosen ? "#111827" : "#9ca3af", weight: chosen ? 2 : 1 };
        }
        const r = byCode.get(f.properties.iso);
        const v = r ? value(r.figures) : null;
        return { fillColor: cls ? cls.colour(v) : NO_DATA, fillOpacity: 0.9, color: "#4b5563", weight: 1 };
      },
      onEachFeature: (f, layer) => {
        const r = byCode.get(f.properties.iso);
        const text = r ? `${f.properties.name}: ${shown(value(r.figures))} (${r.stores} ${r.stores === 1 ? "store" : "stores"})`
          : `${f.properties.name}: no store`;
        layer.bindTooltip(text, { sticky: true });
        if (r) layer.on("click", () => drill(f.properties.iso));
      },
    }).addTo(map);
  }

  function fitAll() {
    map.fitBounds(regionLayer.getBounds(), { padding: [8, 8] });
  }

  // Markers closer than this (px) are spread apart.
  const CROWDED_PX = 28;

  function drawDetail() {
    if (detailLayer) detailLayer.remove();
    detailLayer = null;
    map.off("zoomend", spread);
    if (!state.region) return;
    const provinces = shapes.provinces.features.filter((f) => f.properties.region === state.region);
    const stores = data.stores.filter((s) => s.region === state.region);
    const cls = classes(stores.map((s) => value(s.figures)));
    legend(cls);
    detailLayer = L.layerGroup();
    detailLayer.leaders = L.layerGroup();
    detailLayer.markers = [];
    const outline = L.geoJSON({ type: "FeatureCollection", features: provinces }, {
      style: { color: "#111827", weight: 1.5, dashArray: "5 4", fill: false },
      interactive: false,
    });
    detailLayer.addLayer(outline);
    detailLayer.addLayer(detailLayer.leaders);
    for (const s of stores) {
      const at = place(s);
      if (!at) continue;
      const v = value(s.figures);
      const marker = L.circleMarker(at, {
        radius: 9, color: "#111827", weight: 2, fillOpacity: 1, fillColor: cls ? cls.colour(v) : NO_DATA,
        className: "store-marker",
      });
      marker.home = L.latLng(at);
      marker.bindTooltip(`${s.name}: ${shown(v)}`, { direction: "right", offset: [10, 0] });
      marker.on("click", () => { location.href = `/dashboard?store=${encodeURIComponent(s.id)}`; });
      detailLayer.addLayer(marker);
      detailLayer.markers.push(marker);
    }
    detailLayer.addTo(map);
    const feature = shapes.regions.features.find((f) => f.properties.iso === state.region);
    if (feature) map.fitBounds(L.geoJSON(feature).getBounds(), { padding: [12, 12] });
    spread();
    map.on("zoomend", spread);
  }

  // Stores of one city fall on the same pixels at a region's zoom. Rather than zoom into a
  // map with no streets, each group of crowded markers is spread on a small circle around its
  // centre, a thin line from each to where the store really is (as map libraries "spiderfy").
  function spread() {
    if (!detailLayer) return;
    const markers = detailLayer.markers;
    detailLayer.leaders.clearLayers();
    const pts = markers.map((m) => map.latLngToLayerPoint(m.home));
    const group = new Array(markers.length).fill(-1);
    markers.forEach((_, i) => {
      if (group[i] >= 0) return;
      group[i] = i;
      // Grow the group while any marker is crowded by one already in it.
      for (let grown = true; grown;) {
        grown = false;
        markers.forEach((__, j) => {
          if (group[j] >= 0) return;
          if (pts.some((p, k) => group[k] === i && p.distanceTo(pts[j]) < CROWDED_PX)) {
            group[j] = i;
            grown = true;
          }
        });
      }
    });
    for (const g of new Set(group)) {
      const members = markers.map((m, i) => i).filter((i) => group[i] === g);
      if (members.length === 1) {
        markers[members[0]].setLatLng(markers[members[0]].home);
        continue;
      }
      const c = members.reduce((acc, i) => acc.add(pts[i]), L.point(0, 0)).divideBy(members.length);
      const r = Math.max(CROWDED_PX, (CROWDED_PX * members.length) / (2 * Math.PI));
      members.forEach((i, n) => {
        const a = (2 * Math.PI * n) / members.length - Math.PI / 2;
        const at = map.layerPointToLatLng(c.add(L.point(r * Math.cos(a), r * Math.sin(a))));
        markers[i].setLatLng(at);
        detailLayer.leaders.addLayer(L.polyline([markers[i].home, at],
          { color: "#111827", weight: 1, interactive: false }));
      });
    }
  }

  function header(cols) {
    $("thead").replaceChildren(el("tr", {}, cols.map(([text, num]) =>
      el("th", { scope: "col", class: num ? "num" : "" , text }))));
  }

  function sorted(items) {
    return [...items].sort((a, b) => {
      const va = value(a.figures), vb = value(b.figures);
      if (va === null && vb === null) return 0;
      if (va === null) return 1;
      if (vb === null) return -1;
      return vb - va;
    });
  }

  function renderTable() {
    const label = FIGURES[state.figure].label;
    if (!state.region) {
      $("h-table").textContent = "All regions";
      $("caption").textContent = `Regions by ${label.toLowerCase()}`;
      $("back-wrap").hidden = true;
      const extra = state.figure !== "tickets";
      header([["Region"], ["Stores", true], [label, true], ...(extra ? [["Tickets", true]] : []), ["Stores in it"]]);
      $("rows").replaceChildren(...sorted(data.regions).map((r) => {
        const name = regionName(r.region);
        return el("tr", { "data-region": r.region }, [
          el("th", { scope: "row", text: name }),
          el("td", { class: "num", text: String(r.stores) }),
          el("td", { class: "num figure", text: shown(value(r.figures)) }),
          ...(extra ? [el("td", { class: "num", text: String(r.figures.tickets) })] : []),
          el("td", {}, [el("button", { type: "button", "aria-label": `Show the stores of ${name}`,
            onclick: () => drill(r.region) }, ["Stores"])]),
        ]);
      }));
    } else {
      const name = regionName(state.region);
      $("h-table").textContent = `Stores in ${name}`;
      $("caption").textContent = `Stores in ${name} by ${label.toLowerCase()}`;
      $("back-wrap").hidden = false;
      const extra = state.figure !== "tickets";
      header([["Store"], [label, true], ...(extra ? [["Tickets", true]] : []), ["Dashboard"]]);
      const stores = data.stores.filter((s) => s.region === state.region);
      $("rows").replaceChildren(...sorted(stores).map((s) => el("tr", { "data-store": s.id }, [
        el("th", { scope: "row", text: s.name }),
        el("td", { class: "num figure", text: shown(value(s.figures)) }),
        ...(extra ? [el("td", { class: "num", text: String(s.figures.tickets) })] : []),
        el("td", {}, [el("a", { href: `/dashboard?store=${encodeURIComponent(s.id)}`,
          "aria-label": `Open the dashboard of ${s.name}`, text: "Open" })]),
      ])));
    }
    const unplaced = data.stores.filter((s) => !s.region);
    $("unplaced").hidden = !unplaced.length;
    $("unplaced").textContent = unplaced.length
      ? `${unplaced.length} ${unplaced.length === 1 ? "store has" : "stores have"} no region yet (${unplaced.map((s) => s.name).join(", ")}): set it with PUT /v1/admin/stores/{id}/location.`
      : "";
  }

  function render(refit) {
    ensureMap();
    drawRegions();
    drawDetail();
    if (refit && !state.region) fitAll();
    renderTable();
    remember();
  }

  function drill(code) {
    state.region = code;
    render(true);
    $("back").focus();
  }

  async function load(refit) {
    try {
      const r = await fetch(`/dashboard/api/map?days=${state.days}`, { credentials: "same-origin" });
      if (r.status === 403) { location.href = "/dashboard"; return; }
      if (!r.ok) throw new Error(`the map's figures answered ${r.status}`);
      data = await r.json();
      if (state.region && !data.regions.some((x) => x.region === state.region)) state.region = null;
      render(refit);
      showProblem("");
      setLive("live", "Live");
      $("updated").textContent = `Updated ${new Date(data.now_ms).toLocaleTimeString()}`;
    } catch (e) {
      setLive("reconnecting", "Retrying");
      showProblem(`Cannot load the map's figures: ${e.message || e}`);
    }
  }

  async function start() {
    const [regions, provinces] = await Promise.all(
      ["spain-regions", "spain-provinces"].map((n) =>
        fetch(`/dashboard/map/${n}.geojson`).then((r) => {
          if (!r.ok) throw new Error(`${n}: ${r.status}`);
          return r.json();
        })));
    shapes = { regions, provinces };
    $("figure").value = state.figure;
    $("days").value = state.days;
    $("figure").addEventListener("change", () => { state.figure = $("figure").value; render(false); });
    $("days").addEventListener("change", () => { state.days = $("days").value; load(false); });
    $("back").addEventListener("click", () => {
      state.region = null;
      render(true);
      $("rows").querySelector("button")?.focus();
    });
    await load(true);
    setInterval(() => load(false), REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    start().catch((e) => showProblem(`The map failed to start: ${e.message || e}`));
  });
})();
