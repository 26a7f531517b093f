"""Reproducible, notebook-first companion to the thesis 'Trustworthy Neural Architecture Search' (Hosseini, 2024)

Modules:

- `trustnas_nb.adaptation`: Chapter 2 (DALBG): the domain-adaptation term that pulls the features of the examples outside a group towards the group's own (eqs. 2.6 to 2.8), and the four distances compared in Table 2.8 (MMD, CORAL, KL, CDD), as differentiable torch functions of two sets of feature vectors.
- `trustnas_nb.agnet`: Seed 002 (Keuper, *NAS and robustness*): Table 1 of L1040–L1050 runs random search, local search and BANANAS on the robustness dataset, optimizing clean or FGSM accuracy; AG-Net (Algorithm 3, graph generation, L658–L687; Algorithm 1, search, L702–L737; weighted retraining, L743–L745) is a generative search that the slides show is sample-efficient. All of them here query one table through one interface, so a search never knows whether its numbers came from the robustness dataset built in this project (`trustnas_nb.robbench`), a published benchmark file, or a synthetic table used for tests.
- `trustnas_nb.balenas`: Seed 004 (M. Zhang, *Automated Deep Learning: A Study on Neural Architecture Search*, UTS 2021), chapter 5 (L1577–L1925): the architecture parameters α become a Gaussian posterior q(α) = N(μ, diag σ²), learned by natural-gradient variational inference with the *variational Adam* (VAdam) optimizer; the α gradient is taken at Monte-Carlo samples of the posterior ("MCMC sampling", M samples per step); a *depth-aware* L0 term (eqs. 5.19–5.21) pushes the DARTS-space cells deeper; the final cell is the arg-max of the posterior mean μ.
- `trustnas_nb.bounds`: A sound, differentiable linear-relaxation bound engine for any network built from the layers of the DARTS family (supernets, evaluation networks, your own `nn.Module`): lower and upper bounds of the logits, or of margins, over an ℓ∞, ℓ2 or ℓ1 ball, certified radii, and gradients of the bounds with respect to the weights and the architecture α.
- `trustnas_nb.brain`: Thesis §4.6 (L1818–L1908): SANAS searches the cell of an *explainer* network whose saliency maps re-weight the MRI slices that a randomly initialised ResNet-18 *audience* learns from; the explainer's architecture is chosen so that the audience (and the explainer itself) generalize. Hand-designed baselines (DenseNet, VGG, ResNet) and the DARTS family with and without SANAS are compared on four classes of brain MRI (Tables 4.9–4.12, Figs. 4.5–4.7).
- `trustnas_nb.caption_metrics`: Chapter 3 (IUC): the COCO caption metrics of Tables 3.2–3.6, BLEU-1..4, METEOR, ROUGE-L and CIDEr-D, computed through pycocoevalcap with checked inputs, one cached METEOR process, SPICE reported as unavailable with its reason, and CIDEr-D with document frequencies from a fixed training corpus for self-critical sequence training.
- `trustnas_nb.captioning`: Chapter 3 (IUC) searches the architecture of an image-captioning encoder–decoder. This notebook builds the models it needs: a grid encoder made of DARTS convolutional cells (searchable or fixed), a language decoder whose recurrent cell comes from the DARTS recurrent-cell space (searchable or fixed) with attention over the grid, the fixed human-designed captioner (CNN + attention LSTM) that IUC uses as its predictive model, teacher-forced cross-entropy, soft (differentiable) caption generation, greedy and beam search, and self-critical sequence training (SCST) for CIDEr optimisation.
- `trustnas_nb.claims`: A claim of the thesis, the numbers our runs measured for it, the statistical test that compares them and the verdict at the scale we ran: *holds*, *does not hold* or *undecided*. Experiment notebooks record them; `outputs/REPORT.md` gathers them.
- `trustnas_nb.core`: The machinery every chapter shares: where data and outputs live, how runs are seeded, which device they use, how big they are (`ci` / `cpu` / `paper`), and how tables and figures are written so that each one says what produced it.
- `trustnas_nb.datasets`: Nine small datasets built from what scikit-learn ships or generated from a seed: digits (for MNIST/CIFAR), coloured, textured, cluttered objects of ten shapes (a harder CIFAR-10 stand-in), cluttered digits with ground-truth masks (for saliency), colour-biased digits (for CelebA/ISIC fairness), captioned shape scenes (for COCO), sentiment sentences with the sentiment words marked (for SST-2), brain MRI slices with lesion masks (for the brain-tumour MRI set), sentence pairs (for GLUE's pair tasks) and imbalanced skin lesions with a sex attribute (for ISIC-2018 fairness).
- `trustnas_nb.distributed`: A lab with several GPUs trains the evaluation networks (and runs the searches) on all of them: `torchrun` starts one process per device, every process holds a replica, each trains on its own shard of every batch, and the gradients are averaged before each step — so the replicas stay identical and the run is the one-process run with the whole batch. Only rank 0 writes. The same code runs on CPUs with the gloo backend, which is how it is tested.
- `trustnas_nb.dryrun`: Build every model and training step of every experiment at the thesis' sizes, run a few steps on random tensors of the real datasets' shapes, and report per experiment the parameter count, the activation memory per batch, the FLOPs per step and an estimated GPU time.
- `trustnas_nb.dsrna`: Two differentiable robustness metrics of an architecture — a certified lower bound (DSRNA-CB) and a Jacobian-norm bound (DSRNA-Jacobian) — and the search that maximizes them next to the validation accuracy (eq. 1.16), as methods of the one search driver: `run_search('dsrna_cb' | 'dsrna_jacobian' | 'dsrna_combined', space=…)`.
- `trustnas_nb.e2nas`: Seed 004 (Zhang, *Automated Deep Learning*), chapter 4 (L1108–L1576): a VGAE maps cell graphs injectively to a continuous space, the architecture is optimised there with exploration enhancement, the single-path supernet is trained with architecture complementation (Algorithm 4), and E²NAS-R adds a depth regulariser.
- `trustnas_nb.evalnet`: The second half of every differentiable search: the discrete cell is stacked into a deeper, wider network (CIFAR- or ImageNet-style, as in DARTS), trained from scratch with the DARTS recipe (SGD with cosine annealing, cutout, an auxiliary head, drop-path), and evaluated. Parameter counts match the published ones.
- `trustnas_nb.explanation_reg`: The three saliency-based baselines of Table 4.1 as one extra term in the weight-training loss: Ross et al.'s input-gradient *explanation constraints* (EC), Rieger et al.'s *contextual decomposition explanation penalization* (CDEP) and Pillai & Pirsiavash's *global max pooling + Grad-CAM consistency* (GMPGC). Each one is a differentiable function of the weights and the architecture parameters of the supernet, so the search driver can add it to the training loss.
- `trustnas_nb.fairness`: Chapter 2 (LBG): the group-fairness metrics the thesis reports, demographic parity and equalized odds for the binary CelebA task (Table 2.1) and statistical parity, equal opportunity and average odds differences for the 7-class ISIC-18 task (Table 2.2), computed with fairlearn from hard predictions and a sensitive attribute.
- `trustnas_nb.genotypes`: A genotype is the discrete cell a differentiable search hands to the evaluation network: for every intermediate node, which operations it applies to which earlier nodes. This module derives it from the architecture weights (the DARTS rule), reads and writes it in the DARTS notation (so a published genotype can be pasted in), checks it, draws it, and holds the published genotypes as reference data.
- `trustnas_nb.icdarts`: Seed 003 (E. Herron, *Generalized Differentiable NAS with Performance and Stability Improvements*, 2023), §3.1–3.2 (L309–L444): CDARTS couples the DARTS search network with a discretized *intermediate evaluation network* that is rebuilt from α during the search and distils its logits back into the search; ICDARTS re-routes the losses so the evaluation network is trained exactly as in retraining. §3.2.2 adds five configurations V0–V4 of the *zero* operation.
- `trustnas_nb.idarts`: Seed 004, chapter 6 (Zhang, L1921–L2256): the architecture gradient of DARTS through the implicit function theorem, its inverse Hessian by a K-term Neumann series, computed on minibatches after T inner steps — an option of the project's one engine (`MLOProblem(method='neumann', implicit=True)`) and of the one search driver (`run_search('idarts')`), plus a bench that measures how close each hypergradient is to the exact one.
- `trustnas_nb.iuc`: Thesis chapter 3 (eqs. 3.1–3.10, Algorithm 3): a searchable encoder–decoder learns to caption labeled images, a fixed predictive captioner learns from the pseudo-captions it writes for unlabeled images, and the architecture is chosen so that the predictive captioner does well on validation captions — one `MLOProblem` chain.
- `trustnas_nb.lbg`: Thesis chapter 2: a group-assignment model T, K group-specific experts S_k and a learnable relaxed grouping C of the training examples, solved end to end as one chain of the multilevel engine (stages I-III, eqs. 2.1-2.5; DALBG's domain-adaptation term, eqs. 2.6-2.8; LBG-NAS with searchable experts, eqs. 2.9-2.10; the one-step hypergradients of eqs. 2.11-2.19, Algorithm 2), with the chapter's networks, training loop and table rows.
- `trustnas_nb.loaders`: MNIST, CIFAR-10/100, ImageNet-style folders, CelebA, ISIC-2018, COCO captions with the Karpathy split, brain-tumour MRI folders and six GLUE tasks (SST-2, MRPC, QQP, MNLI, QNLI, RTE), read from the standard on-disk formats under the data root. Nothing is ever downloaded: a missing dataset is an error that shows the layout it expected.
- `trustnas_nb.mlo`: One small engine for every chain of the thesis: DARTS' two levels, DSRNA's extra upper term, LBG's three levels of arbitrary parameter groups, IUC's pseudo-label middle level and SANAS' four levels with an ascending attack and per-level update frequencies. A chain is a list of `Level`s; the hypergradient method (finite differences, exact autograd, first order, Neumann) is a setting.
- `trustnas_nb.moe`: The models LBG is compared with in Tables 2.3 and 2.10: a DeepMoE-style gated mixture, an MGE-CNN-style mixture of experts, and a bagging ensemble, each trained jointly on the whole training set with the same experts as LBG.
- `trustnas_nb.nb201`: Seed 002 (Keuper, *NAS and robustness*, L593–L613, L954–L964): the NAS-Bench-201 cell — 4 nodes, 6 edges, 5 operations, 15,625 architectures, of which 6,466 are unique up to isomorphism — as data the robustness dataset, the training-free proxies and the searches of seed 002 can iterate over: the cell string format, an index, the isomorphism classes, conversion to and from the project's genotypes, and the fixed-architecture network.
- `trustnas_nb.oneshot`: Seed 004 (Zhang, *Automated Deep Learning*), chapters 2 (EN²AS, L521–L734) and 3 (NSAS, L735–L1107): single-path supernet training, sampled by novelty search or regularised against forgetting, then a search on the trained supernet.
- `trustnas_nb.ops`: The candidate operations of the DARTS family as plain `nn.Module`s made of standard layers, and the search spaces as *data*: which operations sit on which edge, how many nodes a cell has, and how a cell is discretized.
- `trustnas_nb.reference`: Tables transcribed from the thesis text (`seeds/000_…`), the NAS-Bench-201 rows several seed-004 tables share, and the accessor every reference table goes through; used only for side-by-side comparison with what our runs measure. Nothing here is ever reported as a measurement of ours.
- `trustnas_nb.reproduce`: `trustnas reproduce` runs every experiment notebook with papermill at a chosen scale, keeps the executed notebooks and their tables and figures under `outputs/`, and assembles `outputs/REPORT.md`.
- `trustnas_nb.robbench`: Seed 002 (Keuper, *NAS and robustness*, L940–L1072; Jung, Lukasik & Keuper, *Neural Architecture Design and Robustness: a Dataset*, ICLR 2023): every NAS-Bench-201 architecture trained with one recipe, then evaluated clean, under FGSM, PGD, APGD and Square at a grid of ε, and under common corruptions; the ranks compared with Kendall τ, also against training-free proxies computed at initialization.
- `trustnas_nb.robustness`: Chapter 1's evaluation of robust architectures, game-based and verification-based: the thesis' attacks (PGD, FGSM, C&W, AutoAttack) from torchattacks with its per-dataset budgets as data, robust accuracy and the accuracy-vs-PGD-iterations curve, retraining of evaluation networks with Jacobian regularization or PGD adversarial training, and averaged certified lower bounds from the bound engine.
- `trustnas_nb.saliency`: Chapter 4 (SANAS)'s saliency machinery: the adversarial-attack saliency δ of stage II (eq. 4.2), the pixel reweightings of stage III (eq. 4.3 and Table 4.4), integrated gradients and SmoothGrad from captum (Table 4.5), localisation scores against ground-truth masks and the cascading-randomisation sanity check (Fig. 4.2) from Quantus, and a plotting helper.
- `trustnas_nb.sanas`: Chapter 4 of the thesis: a model with two sets of weights $W_1$, $W_2$ and one architecture $A$; $W_1$ learns the task, an adversarial attack on $W_1$ gives every training image a saliency map δ, $W_2$ learns from the saliency-reweighted images, and $A$ is chosen so that both models generalize. One `MLOProblem` chain of four levels, with the update schedule of the SANAS supplement, as methods of the search driver.
- `trustnas_nb.search`: One driver runs every DARTS-family search as a two-level chain of the MLO engine (weights *w* below, architecture α above); the methods differ only in data: the supernet's options, the hypergradient, the perturbation of α, the schedule of stages, the stopping rule.
- `trustnas_nb.supernet`: One supernet for DARTS and its descendants: mixed operations on every edge of the normal and reduction cells, architecture parameters kept apart from the weights, and PC-DARTS, P-DARTS, PR-DARTS and SDARTS as *options* of the same module, not copies of it.
- `trustnas_nb.textnas`: Thesis §4.4.2: SANAS for text classification. Sentences are searched with the same supernet, the same four-level chain and the same driver as images; tokens become relaxed one-hot vectors (Gumbel-softmax) so that saliency, reweighting and hypergradients can flow through the input.
- `trustnas_nb.xdarts`: Seed 003 (E. Herron, 2023), chapter 4 (L626–L893): four alternative operation spaces (Table 4.1) and their union (Table 4.2) searched by a *dynamic tournament* (Algorithm 2); two alternative cell templates, I-DARTS and XDARTS (§4.2, Fig. 4.8); and a multi-objective ICDARTS with an expected-latency penalty δP(α) (eq. 4.1, Algorithm 3, latency weights of Table 4.6)."""

# This is the one hand-written file of the package: nbdev keeps the version and the module docstring
# (generated from the notebooks) here, and the stable entry points below are resolved lazily, so that
# `import trustnas_nb` stays fast: torch is imported only when an attribute that needs it is first used.
__version__ = "0.1.0"

import importlib as _importlib

# public name -> module that defines it (resolved on first access)
_LAZY = {
    # foundation
    'load_settings': 'core', 'seed_everything': 'core', 'get_device': 'core', 'preset': 'core',
    'Outputs': 'core', 'SCALES': 'core',
    'get_dataset': 'datasets', 'dataset_info': 'datasets', 'SPLITS': 'datasets', 'DATASETS': 'datasets', 'Vocab': 'datasets',
    'get_real_dataset': 'loaders', 'REAL_DATASETS': 'loaders', 'DatasetNotFoundError': 'loaders',
    'expected_layout': 'loaders', 'write_fixture': 'loaders',
    'reproduce': 'reproduce',
    # DARTS-family core
    'PRIMITIVES': 'ops', 'SPACES': 'ops', 'get_space': 'ops',
    'Genotype': 'genotypes', 'parse_genotype': 'genotypes', 'format_genotype': 'genotypes',
    'GENOTYPES': 'genotypes', 'get_genotype': 'genotypes', 'derive_genotype': 'genotypes',
    'validate_genotype': 'genotypes', 'plot_cell': 'genotypes',
    'build_network': 'evalnet', 'count_parameters': 'evalnet', 'NetworkCIFAR': 'evalnet', 'NetworkImageNet': 'evalnet',
    'train_network': 'evalnet', 'evaluate': 'evalnet',
    'SuperNet': 'supernet', 'build_supernet': 'supernet',
    'Level': 'mlo', 'MLOProblem': 'mlo', 'hypergradient': 'mlo', 'functional': 'mlo',
    'run_search': 'search', 'random_search': 'search', 'evaluate_genotype': 'search', 'METHODS': 'search',
    'thesis_table': 'reference',
    # certified bounds (chapter 1)
    'certified_bounds': 'bounds', 'certified_radius': 'bounds', 'compute_bounds': 'bounds', 'margin_spec': 'bounds',
    'UnsupportedOperationError': 'bounds',
    # thesis claims as data
    'Claim': 'claims', 'VERDICTS': 'claims', 'compare_greater': 'claims', 'compare_less': 'claims', 'compare_all': 'claims',
    'equivalent_or_better': 'claims', 'anova': 'claims', 'ratio_claim': 'claims', 'record_claims': 'claims',
    'read_claims': 'claims', 'claims_markdown': 'claims',
    # chapter 1: DSRNA
    'jacobian_norm': 'dsrna', 'jacobian_metric': 'dsrna', 'jacobian_frobenius_sq': 'dsrna', 'cb_metric': 'dsrna',
    'RobustTerm': 'dsrna',
    # chapter 1: robustness evaluation (attacks, robust retraining, averaged certified bounds)
    'ATTACKS': 'robustness', 'BUDGETS': 'robustness', 'make_attack': 'robustness', 'robust_accuracy': 'robustness',
    'pgd_curve': 'robustness', 'jacobian_regularizer': 'robustness', 'pgd_adversary': 'robustness',
    'train_robust': 'robustness', 'mean_certified_bound': 'robustness', 'Normalized': 'robustness',
    # chapter 4: SANAS, saliency, the explanation-regularized baselines
    'SanasChain': 'sanas', 'sanas_settings': 'sanas', 'DeltaTable': 'sanas', 'SignAscent': 'sanas',
    'reweight': 'saliency', 'saliency_map': 'saliency', 'localisation': 'saliency', 'randomisation_check': 'saliency',
    'show_saliency': 'saliency', 'REWEIGHTINGS': 'saliency', 'SALIENCY_METHODS': 'saliency',
    'explanation_penalty': 'explanation_reg', 'contextual_decomposition': 'explanation_reg', 'grad_cam': 'explanation_reg',
    'audience_model': 'sanas',
    # chapter 4: text NAS (§4.4.2)
    'TextSuperNet': 'textnas', 'build_text_supernet': 'textnas', 'gumbel_relax': 'textnas', 'one_hot_tokens': 'textnas',
    'text_network': 'textnas', 'text_run': 'textnas', 'word_saliency': 'textnas', 'TEXT_PRIMITIVES': 'ops',
    # chapter 4: the brain-tumour explainer / audience study (§4.6)
    'brain_run': 'brain', 'baseline_run': 'brain', 'BRAIN_BASELINES': 'brain', 'baseline_model': 'brain',
    # chapter 2 (LBG / DALBG) foundations: fairness metrics and the domain-adaptation distances
    'fairness_report': 'fairness', 'demographic_parity_difference': 'fairness', 'equalized_odds_difference': 'fairness',
    'mmd': 'adaptation', 'coral': 'adaptation', 'cdd': 'adaptation', 'group_discrepancy': 'adaptation',
    'LBGChain': 'lbg', 'fit_lbg': 'lbg', 'lbg_search': 'lbg', 'ch2_run': 'lbg', 'resnet_cifar': 'lbg', 'fairness_tensors': 'lbg',
    'MixtureOfExperts': 'moe', 'Bagging': 'moe', 'fit_classifier': 'moe', 'fit_bagging': 'moe',
}
_MODULES = ('core', 'datasets', 'loaders', 'reproduce', 'ops', 'genotypes', 'supernet', 'evalnet', 'mlo', 'search', 'reference', 'bounds', 'claims', 'dsrna', 'robustness', 'saliency', 'sanas', 'explanation_reg', 'textnas', 'brain', 'fairness', 'adaptation', 'lbg', 'moe')

def __getattr__(name):
    if name in _MODULES: return _importlib.import_module(f'{__name__}.{name}')
    if name in _LAZY:
        mod = _importlib.import_module(f'{__name__}.{_LAZY[name]}')
        return getattr(mod, name)
    raise AttributeError(f"module 'trustnas_nb' has no attribute {name!r}")

def __dir__(): return sorted(list(globals()) + list(_LAZY) + list(_MODULES))
