"""Every number that Schneider, Stenning & Elliott (2023) publish, in one place.

Front. Astron. Space Sci. 10:1197358; the protocol's facts are in
shared/reference/original-protocol.md. The report, the figures, the benchmark and
`python -m alexnet_jax.data verify_paper` read these; nothing else types them. This module
imports nothing, so every layer may use it.
"""

CLASS_NAMES = ("elliptical", "lenticular", "spiral", "irr_misc")

# The data (Section 2): the Nair & Abraham (2010) catalogue, in CLASS_NAMES order.
NUM_EXAMPLES = 14034
CLASS_TOTALS = (2738, 3215, 7708, 373)
TRAIN_SIZE = 12000
TEST_SIZE = NUM_EXAMPLES - TRAIN_SIZE  # 2,034
# Test-set class counts read off the original's per-run confusion matrices.
RUN_TEST_COUNTS = {0: (386, 485, 1113, 50), 49: (375, 501, 1108, 50)}

# The study design.
RUNS = 100
EPOCHS = {"pretrained": 200, "scratch": 400}
LONG_RUN_EPOCHS = 1000
LONG_RUNS = (45, 46, 47, 48, 49)
EXAMPLE_RUN = 49  # the run of Figs 7 and 10

# The results (Table 1, Sections 3-4).
PEAK_ACC = {"pretrained": 0.842, "scratch": 0.824}
PEAK_EPOCH = {"pretrained": (155, 34), "scratch": (367, 33)}  # mean, SD (0-based epochs)
ADVANTAGE_FIRST_200_POINTS = 4.6  # pretrained minus scratch, scratch limited to its first 200 epochs
PRETRAINED_WITHIN = {20: 0.820, 50: 0.831}  # the pretrained arm's peak within its first N epochs
GAIN_FROM_LONGER_TRAINING = {50: "about 1 point", 20: "2-2.5 points"}  # Fig. 6: peak over all 200 minus first N
SIGN_TEST_P = 1.58e-30  # two-sided, peak accuracy and epoch of peak alike: 2 x 0.5**100
SIGN_TEST_WINS = (100, 100)  # the pretrained arm won 100 of 100 paired runs
IRR_MISC_RATIO = 2.0  # Irr+Misc class accuracy, pretrained over scratch: "roughly twice"
IRR_MISC_PRETRAINED_BELOW = 0.5  # ... and still below 50 %
LONG_RUN_ADVANTAGE_POINTS = (0.5, 1.0)  # runs 45-49 at 1,000 epochs: pretrained still ahead

# The compute (Section 2.3): one Tesla V100 32 GB per run.
GPU = "Tesla V100 32 GB"
GPU_MONTHS = 0.96
CPU_MONTHS = 5.64
SECONDS_PER_EPOCH = 41.0  # including evaluation
