// Block-diagonal transport: out[s, k·n + i] = Σ_j E[s, k, i, j] · z[s mod B, k·n + j], one
// invocation per output value, summing over j in ascending order like the CPU reference
// (`BlockDiagonal::apply`). z has B rows (B divides S): one shared feature (B = 1) broadcasts over
// all S group elements.

struct Params {
    // Blocks per row K, block size n, rows S of E, rows B of z.
    blocks: u32,
    n: u32,
    rows: u32,
    z_rows: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> transport: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

const WG: u32 = 64u;
const GROUPS_PER_ROW: u32 = 65535u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let id = (group.x + group.y * GROUPS_PER_ROW) * WG + tid;
    let n = params.n;
    let d = params.blocks * n;
    if id >= params.rows * d {
        return;
    }
    let row = id / d;
    let col = id % d;
    let block = col / n;
    let i = col % n;
    let e = ((row * params.blocks + block) * n + i) * n;
    let x = (row % params.z_rows) * d + block * n;
    var acc = 0.0;
    for (var j = 0u; j < n; j++) {
        acc += transport[e + j] * z[x + j];
    }
    output[id] = acc;
}
