# %% [markdown]
# # What does 75% sparsity buy, and where does the rest go?
#
# MediSwift pre-trains GPT-3 XL with 75% of its weights masked to zero. Masked weights promise
# 1 / (1 - 0.75) = 4x fewer multiply-adds on them; this notebook asks wafersim how much of that a
# WSE-2 delivers in wall-clock, and where the difference goes.
#
# Run it as a script (`python examples/python/sparsity_buys.py [OUT.png]`) or cell by cell in
# an editor that reads `# %%` cells. It needs `pip install ./python` and matplotlib
# (`pip install -r examples/python/requirements.txt`). It writes one file: the picture.

# %%
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt

import wafersim

SPARSITY = 0.75
MODEL, FABRIC = "mediswift-xl", "wse2"
OUT = sys.argv[1] if len(sys.argv) > 1 else "sparsity_buys.png"

# %% [markdown]
# ## The whole recipe, dense and at 75%
# `train` runs sparse pre-training, dense fine-tuning and soft prompting, once dense and once at
# the sparsity; nothing is written to disk unless `out=` asks.

# %%
report = wafersim.train(MODEL, fabric=FABRIC, sparsity=[SPARSITY])
dense, sparse = report.runs  # the dense run always comes first
pretrain = sparse["phases"][0]
ideal = 1 / (1 - SPARSITY)
print(f"{MODEL} on {FABRIC}, pre-training at sparsity {SPARSITY}:")
print(f"  ideal on the masked weights   {ideal:5.2f}x")
print(f"  promised by the FLOP count    {pretrain['theoretical_speedup']:5.2f}x"
      f"  ({100 * (1 - report.masked_flops_share):.0f}% of the FLOPs are on unmasked ops)")
print(f"  simulated on the wafer        {pretrain['simulated_speedup']:5.2f}x"
      f"  ({pretrain['simulated_speedup'] / pretrain['theoretical_speedup']:.0%} of the promise)")
print(f"  whole recipe: {sparse['total']['theoretical_speedup']:.2f}x promised, "
      f"{sparse['total']['simulated_speedup']:.2f}x simulated, "
      f"{dense['total']['seconds'] / 3600:.1f} h -> {sparse['total']['seconds'] / 3600:.1f} h")

# %% [markdown]
# ## Where the rest goes
# Each category's share of the sparse run's time that the FLOP count cannot see (largest first).

# %%
tables = report.to_pandas()
gap = tables["gap"][tables["gap"]["run_sparsity"] == SPARSITY]
print(gap[["label", "share"]].to_string(index=False, formatters={"share": "{:.1%}".format}))

# %% [markdown]
# ## One pre-training step, dense against 75%: cycles by category
# `step` maps and times one step on the whole fabric; its breakdown adds up to its cycles.

# %%
steps = {s: wafersim.step(MODEL, fabric=FABRIC, sparsity=s) for s in (0.0, SPARSITY)}
categories = [k for k in steps[0.0].breakdown if any(st.breakdown[k] for st in steps.values())]
for name in categories:
    cells = [steps[s].breakdown[name] / steps[s].data["cycles"] for s in steps]
    print(f"  {name.removesuffix('_cycles'):16} dense {cells[0]:6.1%}   s={SPARSITY} {cells[1]:6.1%}")

# %% [markdown]
# ## The picture
# Left: speedup against sparsity (the ideal 1/(1-s), the FLOP count's promise, the simulated
# wafer; pre-training). Right: one step's time by category, dense and sparse.

# %%
curve = tables["speedup_curve"]
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
dense_line = [s / 100 for s in range(0, 96)]
left.plot(dense_line, [1 / (1 - s) for s in dense_line], color="0.6", ls=":",
          label="ideal 1/(1-s): masked weights only")
# The FLOP count's promise is Amdahl's law over the masked share of the FLOPs: drawn from it
# densely (straight lines between the simulated points would bend it), marked where simulated.
masked = report.masked_flops_share
left.plot(dense_line, [1 / (1 - masked + masked * (1 - s)) for s in dense_line], "--",
          color="#0072B2", label=f"FLOP count (Amdahl: {masked:.0%} of FLOPs masked)")
left.plot(curve["sparsity"], curve["pretrain_theoretical_speedup"], "o", color="#0072B2", ms=3)
left.plot(curve["sparsity"], curve["pretrain_simulated_speedup"], "-o", color="#D55E00",
          ms=4, label="simulated wafer")
left.set_ylim(0.9, 1.15 * curve["pretrain_theoretical_speedup"].max())
left.set(xlabel="sparsity", ylabel="pre-training speedup over dense (x)",
         title=f"{MODEL} on {FABRIC}: speedup against sparsity")
left.annotate(f"{pretrain['simulated_speedup']:.2f}x of {ideal:.0f}x",
              (SPARSITY, pretrain["simulated_speedup"]), textcoords="offset points",
              xytext=(-70, 18), arrowprops={"arrowstyle": "->"})
left.legend(loc="upper left")
left.grid(alpha=0.3)

clock_hz = report.clock_hz
bottom = [0.0, 0.0]
colors = plt.get_cmap("tab10").colors
for i, name in enumerate(categories):
    seconds = [steps[s].breakdown[name] / clock_hz for s in steps]
    right.bar(["dense", f"s={SPARSITY}"], seconds, bottom=bottom, color=colors[i % 10],
              label=name.removesuffix("_cycles").replace("_", " "))
    bottom = [b + v for b, v in zip(bottom, seconds)]
right.set(ylabel="seconds per pre-training step", title="one step's time by category")
right.legend(loc="upper right", fontsize="small")
fig.savefig(OUT, dpi=120)
print(f"wrote {OUT}")
