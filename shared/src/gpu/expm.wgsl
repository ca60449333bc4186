// Batched matrix exponential: one workgroup per n×n matrix, the algorithm of the CPU reference
// (`expm.rs` of this crate) step for step.
//
//   A = (M − μI) / 2ˢ                     trace shift μ and scaling from the CPU plan
//   P = Paterson–Stockmeyer Taylor of degree 4q in powers of A⁴
//   expm(M) = e^μ · P^(2ˢ)               s squarings
//
// The plan (μ, 2⁻ˢ, e^μ, q, s) is computed on the CPU from each matrix's 1-norm by the same
// function the CPU path uses, so the degree/squaring table lives in one place.
//
// A workgroup works on six matrices (A, A², A³, A⁴ and the ping-pong pair P, T) in `work`, which
// this file uses but does not declare: the dispatcher prepends one of two preludes that define
// `work`, `work_base(slot, nn)` (where a workgroup's six matrices start) and `sync()`:
// * blocks up to 16×16 (six of them are 6 KiB): `work` is workgroup memory;
// * larger blocks (six 64×64 f32 matrices are 96 KiB, more than any device's workgroup memory):
//   `work` is a storage scratch buffer, one slice per workgroup in flight.

struct Params {
    n: u32,
    // Matrices in this dispatch, and the index of the first one in the whole batch.
    count: u32,
    base: u32,
    _pad: u32,
}

struct Plan {
    shift: f32,
    scale: f32,
    factor: f32,
    quarters: u32,
    squarings: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> plans: array<Plan>;
// coefs[j] = 1 / j!
@group(0) @binding(3) var<storage, read> coefs: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

const WG: u32 = 64u;
const GROUPS_PER_ROW: u32 = 65535u;

// work[dst] = work[a] · work[b] for n×n row-major matrices; each invocation owns the
// elements idx ≡ tid (mod WG), and sums over k in ascending order like the CPU.
fn matmul(dst: u32, a: u32, b: u32, n: u32, tid: u32) {
    let nn = n * n;
    for (var idx = tid; idx < nn; idx += WG) {
        let row = a + (idx / n) * n;
        let col = b + idx % n;
        var acc = 0.0;
        for (var k = 0u; k < n; k++) {
            acc += work[row + k] * work[col + k * n];
        }
        work[dst + idx] = acc;
    }
}

// work[dst] += c_{4i} I + c_{4i+1} A + c_{4i+2} A² + c_{4i+3} A³ (the owned elements only).
fn add_chunk(dst: u32, i: u32, a: u32, n: u32, tid: u32) {
    let nn = n * n;
    let c0 = coefs[4u * i];
    let c1 = coefs[4u * i + 1u];
    let c2 = coefs[4u * i + 2u];
    let c3 = coefs[4u * i + 3u];
    for (var idx = tid; idx < nn; idx += WG) {
        let diag = select(0.0, c0, idx % (n + 1u) == 0u);
        work[dst + idx] += diag + c1 * work[a + idx] + c2 * work[a + nn + idx]
            + c3 * work[a + 2u * nn + idx];
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let slot = group.x + group.y * GROUPS_PER_ROW;
    if slot >= params.count {
        return;
    }
    let n = params.n;
    let nn = n * n;
    let matrix = params.base + slot;
    let plan = plans[matrix];
    let src = matrix * nn;

    let a = work_base(slot, nn);
    let a2 = a + nn;
    let a3 = a2 + nn;
    let a4 = a3 + nn;
    var p = a4 + nn;
    var t = p + nn;

    for (var idx = tid; idx < nn; idx += WG) {
        let x = input[src + idx];
        work[a + idx] = select(x, x - plan.shift, idx % (n + 1u) == 0u) * plan.scale;
    }
    sync();
    matmul(a2, a, a, n, tid);
    sync();
    matmul(a3, a2, a, n, tid);
    matmul(a4, a2, a2, n, tid);
    sync();

    // P = c_{4q} A⁴ + B_{q−1}, then P ← A⁴ P + B_i for i = q−2 … 0.
    let q = plan.quarters;
    let top = coefs[4u * q];
    for (var idx = tid; idx < nn; idx += WG) {
        work[p + idx] = top * work[a4 + idx];
    }
    add_chunk(p, q - 1u, a, n, tid);
    sync();
    for (var i = q - 1u; i > 0u; i--) {
        matmul(t, a4, p, n, tid);
        add_chunk(t, i - 1u, a, n, tid);
        sync();
        let swap = p;
        p = t;
        t = swap;
    }

    for (var s = 0u; s < plan.squarings; s++) {
        matmul(t, p, p, n, tid);
        sync();
        let swap = p;
        p = t;
        t = swap;
    }

    for (var idx = tid; idx < nn; idx += WG) {
        output[src + idx] = work[p + idx] * plan.factor;
    }
}
