// Regenerates the console map's GeoJSON (sync/endpoint/src/map/*.geojson) from es-atlas
// (the Spanish National Geographic Institute's reference data, CC BY 4.0, as TopoJSON) with
// topojson-client. Run: cd scripts/geo && npm ci && node build.mjs. The output is committed, so
// neither the endpoint's build nor the suite needs npm for it.
//
// What it does beyond the conversion:
// - regions carry their ISO 3166-2 code (`ES-MD`): what `stores.region` holds; provinces carry
//   their own INE code and their region's ISO code (the drill-down shows a region's provinces);
// - Gibraltar, which is not a Spanish region, is left out;
// - the Canary Islands are moved next to the mainland (as every map of Spain does, e.g. the
//   composite projection es-atlas recommends) by CANARY_SHIFT degrees; the page moves stores there
//   by the same amount and draws the inset's frame. Coordinates are rounded to 4 decimals (~10 m).
import { readFileSync, writeFileSync } from "node:fs";
import { feature } from "topojson-client";

const OUT = new URL("../../sync/endpoint/src/map/", import.meta.url);
// Kept in step with CANARY_SHIFT in sync/endpoint/src/map/map.js.
const CANARY_SHIFT = [5, 7];
const CANARY_BOX = [-18.5, 27.4, -13.2, 29.6];

// INE autonomous-community code → ISO 3166-2.
const ISO = {
  "01": "ES-AN", "02": "ES-AR", "03": "ES-AS", "04": "ES-IB", "05": "ES-CN", "06": "ES-CB",
  "07": "ES-CL", "08": "ES-CM", "09": "ES-CT", "10": "ES-VC", "11": "ES-EX", "12": "ES-GA",
  "13": "ES-MD", "14": "ES-MC", "15": "ES-NC", "16": "ES-PV", "17": "ES-RI", "18": "ES-CE",
  "19": "ES-ML",
};
// INE province code → INE autonomous-community code.
const PROVINCE_REGION = {
  "01": "16", "02": "08", "03": "10", "04": "01", "05": "07", "06": "11", "07": "04", "08": "09",
  "09": "07", "10": "11", "11": "01", "12": "10", "13": "08", "14": "01", "15": "12", "16": "08",
  "17": "09", "18": "01", "19": "08", "20": "16", "21": "01", "22": "02", "23": "01", "24": "07",
  "25": "09", "26": "17", "27": "12", "28": "13", "29": "01", "30": "14", "31": "15", "32": "12",
  "33": "03", "34": "07", "35": "05", "36": "12", "37": "07", "38": "05", "39": "06", "40": "07",
  "41": "01", "42": "07", "43": "09", "44": "02", "45": "08", "46": "10", "47": "07", "48": "16",
  "49": "07", "50": "02", "51": "18", "52": "19",
};

const inCanaries = ([x, y]) =>
  x >= CANARY_BOX[0] && x <= CANARY_BOX[2] && y >= CANARY_BOX[1] && y <= CANARY_BOX[3];
const round = (v) => Math.round(v * 1e4) / 1e4;
const place = (p) => {
  const [x, y] = inCanaries(p) ? [p[0] + CANARY_SHIFT[0], p[1] + CANARY_SHIFT[1]] : p;
  return [round(x), round(y)];
};
const walk = (c) => (typeof c[0] === "number" ? place(c) : c.map(walk));

const topo = JSON.parse(
  readFileSync(new URL("node_modules/es-atlas/es/provinces.json", import.meta.url), "utf8"),
);

function collection(object, props) {
  const fc = feature(topo, topo.objects[object]);
  fc.features = fc.features
    .map((f) => ({ type: "Feature", properties: props(f), geometry: {
      type: f.geometry.type, coordinates: walk(f.geometry.coordinates) } }))
    .filter((f) => f.properties !== null)
    .sort((a, b) => a.properties.ine.localeCompare(b.properties.ine));
  return fc;
}

const regions = collection("autonomous_regions", (f) =>
  ISO[f.id] ? { ine: f.id, iso: ISO[f.id], name: f.properties.name } : null,
);
const provinces = collection("provinces", (f) =>
  PROVINCE_REGION[f.id]
    ? { ine: f.id, name: f.properties.name, region: ISO[PROVINCE_REGION[f.id]] }
    : null,
);
const attribution = "© Instituto Geográfico Nacional (IGN), CC BY 4.0, via es-atlas 0.6.0";
for (const [name, fc] of [["regions", regions], ["provinces", provinces]]) {
  fc.attribution = attribution;
  fc.canary_shift = CANARY_SHIFT;
  writeFileSync(new URL(`spain-${name}.geojson`, OUT), JSON.stringify(fc) + "\n");
  console.log(`spain-${name}.geojson: ${fc.features.length} features`);
}
