// Exact k-nearest neighbours of Q queries in an N × d gallery, with the scores, ranking and tie
// rule of the CPU reference (`geometry/knn.rs` of this crate):
// * cosine: clamp((q·g) · (1/|q|) · (1/|g|), −1, 1), higher is nearer; a zero vector scores 0;
// * euclidean: |q − g|², lower is nearer;
// * sums run in eight lanes combined in a fixed order, as on the CPU;
// * equal scores go to the lower gallery row.
//
// Three entry points, dispatched in order on one encoder:
// 1. `query_norms`: 1/|q| per query (cosine only);
// 2. `select_tiles`: one workgroup per (query, tile of TILE rows) scores the tile into workgroup
//    memory and selects its best k as candidates;
// 3. `merge_tiles`: one workgroup per query selects the best k of all its tiles' candidates.
// Selection is k rounds of a workgroup-wide "best item strictly worse than the last pick" (the
// order is total, so this enumerates the top k in order); an invocation rescans its own items only
// when its candidate was the one picked.
//
// The gallery is u32 words: f32 bits, or two f16 per word (low half first) unpacked with
// unpack2x16float, which needs no shader-f16 support.

struct Params {
    dim: u32,
    rows: u32,
    // Queries in this dispatch, and the index of the first one.
    queries: u32,
    k: u32,
    tiles: u32,
    // 0: cosine, 1: euclidean.
    metric: u32,
    packed_f16: u32,
    query_base: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> gallery: array<u32>;
@group(0) @binding(2) var<storage, read> inverse_norms: array<f32>;
@group(0) @binding(3) var<storage, read> queries: array<f32>;
@group(0) @binding(4) var<storage, read_write> query_inverse_norms: array<f32>;
// (gallery row, score bits); row NONE marks an empty slot.
@group(0) @binding(5) var<storage, read_write> candidates: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read_write> results: array<vec2<u32>>;

const WG: u32 = 64u;
const TILE: u32 = 256u;
const GROUPS_PER_ROW: u32 = 65535u;
const NONE: u32 = 0xffffffffu;

var<workgroup> tile_scores: array<f32, TILE>;
var<workgroup> reduce_row: array<u32, WG>;
var<workgroup> reduce_score: array<f32, WG>;

// Which stage `fetch` / `emit` serve, and where their items live.
var<private> merging: bool;
var<private> item_base: u32;
var<private> item_count: u32;
var<private> out_base: u32;

// Whether (row a, score sa) ranks strictly before (row b, score sb).
fn better(a: u32, sa: f32, b: u32, sb: f32) -> bool {
    if a == NONE {
        return false;
    }
    if b == NONE {
        return true;
    }
    if sa != sb {
        return select((sa < sb), (sa > sb), params.metric == 0u);
    }
    return a < b;
}

fn gallery_value(e: u32) -> f32 {
    if params.packed_f16 != 0u {
        let pair = unpack2x16float(gallery[e >> 1u]);
        return select(pair.x, pair.y, (e & 1u) == 1u);
    }
    return bitcast<f32>(gallery[e]);
}

fn term(x: f32, y: f32) -> f32 {
    if params.metric == 0u {
        return x * y;
    }
    let diff = x - y;
    return diff * diff;
}

// Score of global query `q` against gallery row `row`.
fn score(q: u32, row: u32) -> f32 {
    let d = params.dim;
    let qb = q * d;
    let gb = row * d;
    let full = d / 8u * 8u;
    var tail = 0.0;
    for (var j = full; j < d; j++) {
        tail += term(queries[qb + j], gallery_value(gb + j));
    }
    var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (var j = 0u; j < full; j += 8u) {
        for (var l = 0u; l < 8u; l++) {
            acc[l] += term(queries[qb + j + l], gallery_value(gb + j + l));
        }
    }
    let s = (((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])))
        + tail;
    if params.metric == 0u {
        return clamp(s * query_inverse_norms[q] * inverse_norms[row], -1.0, 1.0);
    }
    return s;
}

// Item `pos` of this workgroup: a tile row and its score, or a candidate of an earlier stage.
fn fetch(pos: u32) -> vec2<u32> {
    if merging {
        return candidates[item_base + pos];
    }
    return vec2<u32>(item_base + pos, bitcast<u32>(tile_scores[pos]));
}

fn emit(j: u32, item: vec2<u32>) {
    if merging {
        results[out_base + j] = item;
    } else {
        candidates[out_base + j] = item;
    }
}

// Writes the best `params.k` of this workgroup's `item_count` items, best first, through `emit`
// (NONE rows where there are fewer items than k).
fn select_top(tid: u32) {
    var threshold = vec2<u32>(NONE, 0u);
    var mine = vec2<u32>(NONE, 0u);
    var rescan = true;
    for (var j = 0u; j < params.k; j++) {
        if rescan {
            mine = vec2<u32>(NONE, 0u);
            for (var pos = tid; pos < item_count; pos += WG) {
                let item = fetch(pos);
                let eligible = threshold.x == NONE
                    || better(threshold.x, bitcast<f32>(threshold.y), item.x, bitcast<f32>(item.y));
                if eligible && better(item.x, bitcast<f32>(item.y), mine.x, bitcast<f32>(mine.y)) {
                    mine = item;
                }
            }
        }
        reduce_row[tid] = mine.x;
        reduce_score[tid] = bitcast<f32>(mine.y);
        workgroupBarrier();
        for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
            if tid < stride {
                let other = tid + stride;
                if better(reduce_row[other], reduce_score[other], reduce_row[tid], reduce_score[tid]) {
                    reduce_row[tid] = reduce_row[other];
                    reduce_score[tid] = reduce_score[other];
                }
            }
            workgroupBarrier();
        }
        let pick = vec2<u32>(reduce_row[0], bitcast<u32>(reduce_score[0]));
        workgroupBarrier();
        if tid == 0u {
            emit(j, pick);
        }
        rescan = pick.x != NONE && mine.x == pick.x;
        threshold = pick;
    }
}

@compute @workgroup_size(64)
fn query_norms(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let q = (group.x + group.y * GROUPS_PER_ROW) * WG + tid;
    if q >= params.queries || params.metric != 0u {
        return;
    }
    let global = params.query_base + q;
    var squared = 0.0;
    for (var j = 0u; j < params.dim; j++) {
        let x = queries[global * params.dim + j];
        squared += x * x;
    }
    query_inverse_norms[global] = select(0.0, 1.0 / sqrt(squared), squared > 0.0);
}

@compute @workgroup_size(64)
fn select_tiles(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let id = group.x + group.y * GROUPS_PER_ROW;
    if id >= params.tiles * params.queries {
        return;
    }
    let q = id / params.tiles;
    let tile = id % params.tiles;
    let first = tile * TILE;
    merging = false;
    item_base = first;
    item_count = min(TILE, params.rows - first);
    out_base = id * params.k;
    for (var pos = tid; pos < item_count; pos += WG) {
        tile_scores[pos] = score(params.query_base + q, first + pos);
    }
    workgroupBarrier();
    select_top(tid);
}

@compute @workgroup_size(64)
fn merge_tiles(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let q = group.x + group.y * GROUPS_PER_ROW;
    if q >= params.queries {
        return;
    }
    merging = true;
    item_base = q * params.tiles * params.k;
    item_count = params.tiles * params.k;
    out_base = (params.query_base + q) * params.k;
    select_top(tid);
}
