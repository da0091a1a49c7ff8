# Quality against the ground truth (per subject, then group tables) and QC figures for the report.
# These rules may read desc-truth files; no feature or model rule does.


rule assess_quality:
    input:
        **({"unet": rules.segment_unet.output.dseg} if UNET_READY else {}),
        truth_t1w=rules.simulate_mri.output.truth,
        t1w=rules.reconstruct_mri.output.t1w,
        truth_ct=rules.simulate_anatomy.output.ct,
        ct=rules.reconstruct_ct.output.ct,
        truth_pet=rules.simulate_pet.output.truth,
        pet=rules.reconstruct_pet.output.pet,
        truth_tissue=rules.simulate_anatomy.output.tissue,
        truth_regions=rules.simulate_anatomy.output.regions,
        truth_motion=rules.simulate_anatomy.output.motion,
        template_regions=rules.build_template.output.regions,
        t1_xfm=rules.register_t1.output.xfm,
        t1_velocity=rules.register_t1.output.velocity,
        pet_xfm=rules.register_pet.output.xfm,
        gm=rules.segment_t1.output.gm,
        csf=rules.segment_t1.output.csf,
        tissue=rules.segment_t1.output.tissue,
        regions=rules.segment_t1.output.regions,
    output:
        recon=sub("qc", "recon.tsv"),
        registration=sub("qc", "registration.tsv"),
        segmentation=sub("qc", "segmentation.tsv"),
    log:
        logfile("assess_quality"),
    benchmark:
        benchfile("assess_quality")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    script:
        "../../scripts/assess_quality.py"


rule gather_quality:
    input:
        recon=per_subject(rules.assess_quality.output.recon),
        registration=per_subject(rules.assess_quality.output.registration),
        segmentation=per_subject(rules.assess_quality.output.segmentation),
    output:
        recon=report(group("recon_quality.tsv"), caption="../report/quality.rst", category="Quality"),
        registration=report(
            group("registration_quality.tsv"), caption="../report/quality.rst", category="Quality"
        ),
        segmentation=report(
            group("segmentation_quality.tsv"), caption="../report/quality.rst", category="Quality"
        ),
    log:
        logfile("gather_quality", subject=False),
    benchmark:
        benchfile("gather_quality", subject=False)
    conda:
        f"{ENVS}/ml.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../../scripts/gather_tables.py"


rule qc_figure:
    input:
        unpack(qc_inputs),
    output:
        png=report(
            group("qc/{stage}.png"),
            caption="../report/qc.rst",
            category="QC",
            subcategory="{stage}",
        ),
    log:
        logfile("qc_figure/{stage}", subject=False),
    benchmark:
        benchfile("qc_figure/{stage}", subject=False)
    wildcard_constraints:
        stage="|".join(QC_STAGES),
    conda:
        f"{ENVS}/report.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    params:
        subjects=GROUP_SUBJECTS,
    script:
        "../../scripts/qc_figure.py"
