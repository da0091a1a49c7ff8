# Deep-learning segmentation: a 3D U-Net trained on a simulated training cohort (its own subjects and seed,
# under results/training/) with contrasts synthesised from each subject's tissue maps, then applied to every
# study subject. The study segments with segmentation.unet.checkpoint (the shipped weights, made by
# `make train-unet`) unless segmentation.unet.train is true.


rule simulate_training_subject:
    input:
        fractions=rules.build_template.output.fractions,
        tissue=rules.build_template.output.tissue,
        regions=rules.build_template.output.regions,
        brain=rules.build_template.output.brain,
    output:
        t1map=training_sub("anat", "desc-truth_T1map.nii.gz"),
        t2map=training_sub("anat", "desc-truth_T2map.nii.gz"),
        pdmap=training_sub("anat", "desc-truth_PDmap.nii.gz"),
        fractions=training_sub("anat", "seg-tissue_desc-truth_probseg.nii.gz"),
        tissue=training_sub("anat", "seg-tissue_desc-truth_dseg.nii.gz"),
        regions=training_sub("anat", "seg-regions_desc-truth_dseg.nii.gz"),
        sidecar=training_sub("anat", "desc-truth_anatomy.json"),
    log:
        logfile("simulate_training_subject"),
    benchmark:
        benchfile("simulate_training_subject")
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    params:
        cohort=TRAINING_DRAWS,
        effects=training_effects,
        voxel_mm=config["anatomy"]["voxel_mm"],
    script:
        "../../scripts/simulate_training_subject.py"


rule train_unet:
    input:
        **{
            name: expand(getattr(rules.simulate_training_subject.output, name), subject=TRAINING_SUBJECTS)
            for name in ("t1map", "t2map", "pdmap", "fractions", "tissue", "regions")
        },
    output:
        checkpoint=f"{TRAINING}/unet/unet.pt",
        metadata=f"{TRAINING}/unet/unet.json",
        history=report(f"{TRAINING}/unet/history.tsv", caption="../report/unet.rst", category="U-Net"),
        figure=report(f"{TRAINING}/unet/training.png", caption="../report/unet.rst", category="U-Net"),
    log:
        logfile("train_unet", subject=False),
    benchmark:
        benchfile("train_unet", subject=False)
    conda:
        f"{ENVS}/torch.yaml"
    threads: 2
    resources:
        mem_mb=grid_mem(8000),
        runtime=180,
    params:
        settings={
            "unet": UNET,
            "subjects": TRAINING_SUBJECTS,
            "seed": UNET["training_cohort"]["seed"],
            "mri": config["acquisition"]["mri"],
            "voxel_mm": config["anatomy"]["voxel_mm"],
        },
        device=UNET_DEVICE,
    script:
        "../../scripts/train_unet.py"


rule segment_unet:
    input:
        t1w=analysis_t1w(),
        checkpoint=UNET_CHECKPOINT,
    output:
        probseg=sub("anat", "seg-unet_probseg.nii.gz"),
        dseg=sub("anat", "seg-unet_dseg.nii.gz"),
    log:
        logfile("segment_unet"),
    benchmark:
        benchfile("segment_unet")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(3000),
        runtime=10,
    params:
        settings={"voxel_mm": config["anatomy"]["voxel_mm"]},
        device=UNET_DEVICE,
    script:
        "../../scripts/segment_unet.py"
