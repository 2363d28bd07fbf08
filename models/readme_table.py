"""Print models/README.md's table from models/reference.csv and the checkpoints' own metadata (`make models`)."""
import torch

from srtbench import results

df = results.read("models/reference.csv")
print("| file | defense | threat trained against | clean % | PGD-40 ε 0.1 % (95% CI) | SGD steps | trained on "
      "| train time |")
print("| --- | --- | --- | ---: | ---: | ---: | --- | ---: |")
for r in df.itertuples():
    meta = torch.load(r.checkpoint, weights_only=True, map_location="cpu")["meta"]
    threat = meta["threat"]
    spatial = f"{threat.get('rotation', 0):g}°, {threat.get('translation', 0):g} px"
    where = {"none": "none (standard training)", "pixel": f"ℓ∞ ε {threat.get('epsilon', 0):g}", "spatial": spatial,
             "compound": f"ℓ∞ ε {threat.get('epsilon', 0):g} then {spatial}"}
    kind = "none" if r.defense == "standard" else threat["threat"]
    print(f"| `{r.checkpoint}` | {r.label} | {where[kind]} | {float(r.clean_acc):.1f} | "
          f"{float(r.robust_acc):.1f} ({float(r.robust_ci_low):.1f}–{float(r.robust_ci_high):.1f}) | "
          f"{meta['train']['total_steps']:,} | {meta['device']} | "
          f"{meta['train_time_s'] / 60:.1f} min |")
