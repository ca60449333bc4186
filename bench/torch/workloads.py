"""PyTorch versions of the workloads in trainer/benches/workloads.rs, for `cargo xtask bench-torch`.

Usage: python workloads.py NAME [--iters N] [--warmup N] [--threads T]

Prints one JSON line: the workload, the items (images, pairs or matrices) per iteration, the
thread count, each timed iteration's seconds, the torch version and this process's peak RSS.
The networks follow the ManifoldCLR reference code: torchvision's resnet18 with a 3x3 stride-1
conv1, no max-pool and no fc (CIFAR), the projection head Linear-BN-ReLU-Linear, the coefficient
encoder and prior MLPs, Laplace sampling, the block-diagonal transport through torch.matrix_exp,
and the losses of the method (manifold matching, Laplace KL, MSE-mode Lie-InfoNCE, NT-Xent).
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

BATCH = 64
EVAL_BATCH = 256
EXPM_MATRICES = 8192
EXPM_N = 64
# cifar10-manifoldclr: 512-d features in 8 blocks of 64, 16 operators.
D, BLOCK, M = 512, 64, 16


def resnet18():
    model = torchvision.models.resnet18()
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    return model


def projection_head():
    return nn.Sequential(nn.Linear(512, 1024), nn.BatchNorm1d(1024), nn.ReLU(), nn.Linear(1024, 128))


def mlp(widths):
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if i + 2 < len(widths):
            layers.append(nn.LeakyReLU(0.01))
    return nn.Sequential(*layers)


class Head(nn.Module):
    """Encoder q(c | z0, z1), prior p(c | z0) and the operators psi (M, K, n, n)."""

    def __init__(self):
        super().__init__()
        self.encoder = mlp([2 * D, 2048, 2048, 512])
        self.enc_scale, self.enc_loc = nn.Linear(512, M), nn.Linear(512, M)
        self.prior = mlp([D, 2048, 1024, 512])
        self.prior_scale, self.prior_loc = nn.Linear(512, M), nn.Linear(512, M)
        k = D // BLOCK
        self.psi = nn.Parameter(torch.randn(M, k, BLOCK, BLOCK) * 0.01)

    def transport(self, c, z):
        a = torch.einsum("bm,mkij->bkij", c, self.psi)
        t = torch.matrix_exp(a)
        zb = z.reshape(z.shape[0], -1, BLOCK, 1)
        return (t @ zb).reshape(z.shape)

    @staticmethod
    def sample(loc, logscale):
        u = torch.rand_like(loc) - 0.5
        eps = -torch.exp(logscale) * torch.sign(u) * torch.log((1 - 2 * u.abs()).clamp(1e-6, 1e6))
        return loc + eps

    def forward(self, z0, z1):
        h = self.encoder(torch.cat([z0.detach(), z1.detach()], 1))
        q_logscale = self.enc_scale(h).clamp(-100, 3) + math.log(0.01)
        q_loc = self.enc_loc(h).clamp(-5, 5) + 0.05
        hp = self.prior(z0.detach())
        p_logscale = self.prior_scale(hp).clamp(max=3) + math.log(0.01)
        p_loc = self.prior_loc(hp).clamp(-5, 5)
        c = self.sample(q_loc, q_logscale)
        z_hat = self.transport(c, z0)
        manifold = (z_hat - z1.detach()).pow(2).mean()
        bq, bp = q_logscale.exp(), p_logscale.exp()
        delta = (q_loc - p_loc).abs()
        kl = (p_logscale - q_logscale + delta / bp + (bq / bp) * torch.exp(-delta / bq) - 1).sum(1).mean()
        c_aug = self.sample(p_loc, p_logscale)
        z_aug = self.transport(c_aug, z0)
        return lie_infonce_mse(z_aug, z1, z0, 0.5) + manifold + 1e-5 * kl


def lie_infonce_mse(z_aug, z1, z0, tau):
    rows = torch.cat([z_aug, z1], 0)
    cols = torch.cat([z_aug, z1, z0], 0)
    logits = -torch.cdist(rows, cols).pow(2) / (rows.shape[1] * tau)
    b = z_aug.shape[0]
    pos = -(z_aug - z1).pow(2).mean(1) / tau
    pos = torch.cat([pos, pos])
    return (torch.logsumexp(logits, 1) - pos).mean()


def nt_xent(h0, h1, tau=0.5):
    z = F.normalize(torch.cat([h0, h1]), dim=1)
    sim = z @ z.t() / tau
    n = h0.shape[0]
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, target)


def workload(name):
    g = torch.Generator().manual_seed(0)
    if name == "train_step":
        model = resnet18().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randn(BATCH, 3, 32, 32, generator=g)

        def run():
            opt.zero_grad(set_to_none=True)
            model(x).pow(2).mean().backward()
            opt.step()

        return BATCH, run
    if name == "eval_forward":
        model = resnet18().eval()
        x = torch.randn(EVAL_BATCH, 3, 32, 32, generator=g)

        def run():
            with torch.no_grad():
                model(x)

        return EVAL_BATCH, run
    if name in ("head_step", "manifoldclr_step"):
        head = Head()
        backbone = resnet18().train() if name == "manifoldclr_step" else None
        params = list(head.parameters()) + (list(backbone.parameters()) if backbone else [])
        opt = torch.optim.AdamW(params, lr=1e-3)
        if backbone is None:
            z0 = torch.randn(BATCH, D, generator=g, requires_grad=True)
            z1 = torch.randn(BATCH, D, generator=g, requires_grad=True)
        else:
            x0 = torch.randn(BATCH, 3, 32, 32, generator=g)
            x1 = torch.randn(BATCH, 3, 32, 32, generator=g)

        def run():
            opt.zero_grad(set_to_none=True)
            if backbone is None:
                loss = head(z0, z1)
            else:
                loss = head(backbone(x0), backbone(x1))
            loss.backward()
            opt.step()

        return BATCH, run
    if name == "simclr_step":
        backbone, proj = resnet18().train(), projection_head().train()
        opt = torch.optim.AdamW(list(backbone.parameters()) + list(proj.parameters()), lr=1e-3)
        x0 = torch.randn(BATCH, 3, 32, 32, generator=g)
        x1 = torch.randn(BATCH, 3, 32, 32, generator=g)

        def run():
            opt.zero_grad(set_to_none=True)
            h = proj(torch.cat([backbone(x0), backbone(x1)]))
            nt_xent(h[:BATCH], h[BATCH:]).backward()
            opt.step()

        return BATCH, run
    if name in ("expm_forward", "expm_backward"):
        a = (torch.randn(EXPM_MATRICES, EXPM_N, EXPM_N, generator=g) * 0.05).requires_grad_(True)
        grad = torch.randn(EXPM_MATRICES, EXPM_N, EXPM_N, generator=g)

        def run():
            if name == "expm_backward":
                a.grad = None
                (torch.matrix_exp(a) * grad).sum().backward()
            else:
                with torch.no_grad():
                    torch.matrix_exp(a)

        return EXPM_MATRICES, run
    if name == "augment":
        import numpy as np
        from PIL import Image
        import torchvision.transforms as T

        n = 512
        rng = np.random.default_rng(7)
        images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
        recipe = T.Compose([
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.1),
            T.RandomResizedCrop(32, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
        ])
        loader = torch.utils.data.DataLoader(
            [images[i] for i in range(n)],
            batch_size=64,
            num_workers=torch.get_num_threads(),
            collate_fn=lambda batch: (torch.stack([recipe(im) for im in batch]),
                                      torch.stack([recipe(im) for im in batch])),
            persistent_workers=True,
        )

        def run():
            for _ in loader:
                pass

        return n, run
    if name.startswith("conv"):
        width = int(name[4:])
        px = 32 * 64 // width
        x = torch.randn(BATCH, width, px, px, generator=g, requires_grad=True)
        conv = nn.Conv2d(width, width, 3, padding=1, bias=False)

        def run():
            x.grad = None
            conv.weight.grad = None
            conv(x).sum().backward()

        return BATCH, run
    raise SystemExit(f"unknown workload {name}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    items, run = workload(args.name)
    for _ in range(args.warmup):
        run()
    seconds = []
    for _ in range(args.iters):
        t = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "workload": args.name,
        "items": items,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "torch": torch.__version__,
        "peak_rss_mib": peak_kib / 1024,
    }))


if __name__ == "__main__":
    main()
