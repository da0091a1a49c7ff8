# Features from reconstructed images only (no rule here reads a ground-truth file): regional volumes and
# PET SUVR (when the study has PET) per subject, gathered into one group table; and the images of the image
# feature sets (the T1w or a tissue map through the affine registration), gathered into one array each.


rule extract_features:
    input:
        **({"unet": rules.segment_unet.output.probseg} if config["segmentation"]["method"] == "unet" else {}),
        **({"pet_in_t1": rules.register_pet.output.pet_in_t1} if HAS_PET else {}),
        csf=rules.segment_t1.output.csf,
        gm=rules.segment_t1.output.gm,
        wm=rules.segment_t1.output.wm,
        regions=rules.segment_t1.output.regions,
    output:
        tsv=sub("", "features.tsv"),
    log:
        logfile("extract_features"),
    benchmark:
        benchfile("extract_features")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    script:
        "../../scripts/extract_features.py"


rule gather_features:
    input:
        tsv=per_subject(rules.extract_features.output.tsv),
    output:
        tsv=group("features.tsv"),
    log:
        logfile("gather_features", subject=False),
    benchmark:
        benchfile("gather_features", subject=False)
    conda:
        f"{ENVS}/ml.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../../scripts/gather_tables.py"


rule gather_images:
    input:
        images=lambda w: per_subject(image_source(w.image)),
        xfm=per_subject(rules.register_t1.output.xfm),
        brain=rules.build_template.output.brain,
    output:
        images=group("images/space-template_desc-affine_{image}.npz"),
    log:
        logfile("gather_images/{image}", subject=False),
    benchmark:
        benchfile("gather_images/{image}", subject=False)
    wildcard_constraints:
        image=one_of(dlmi.analysis.design.IMAGES),
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(1500),
        runtime=10,
    params:
        subjects=[f"sub-{s}" for s in GROUP_SUBJECTS],
        voxel_mm=MODEL["image_voxel_mm"],
    script:
        "../../scripts/gather_images.py"
