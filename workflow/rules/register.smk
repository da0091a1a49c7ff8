# Registration: T1 to the template (affine, then a diffeomorphic velocity field; NCC) and PET to T1 (rigid, mutual information).
# A BIDS scan's sidecar says whether it is skull-stripped (it is then registered to the template's brain).


rule register_t1:
    input:
        **(
            {}
            if SIMULATED
            else {"sidecar": rules.conform_t1w.output.sidecar, "brain": rules.build_template.output.brain}
        ),
        t1w=analysis_t1w(),
        template=rules.build_template.output.t1w,
    output:
        xfm=sub("anat", "from-T1w_to-template_mode-image_xfm.txt"),
        velocity=sub("anat", "from-T1w_to-template_desc-velocity_xfm.nii.gz"),
        warped=sub("anat", "space-template_desc-warped_T1w.nii.gz"),
    log:
        logfile("register_t1"),
    benchmark:
        benchfile("register_t1")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(3000),
        runtime=15,
    params:
        registration=config["registration"]["t1_to_template"],
    script:
        "../../scripts/register_t1.py"


rule register_pet:
    input:
        pet=rules.reconstruct_pet.output.pet,
        t1w=analysis_t1w(),
    output:
        xfm=sub("pet", "from-pet_to-T1w_mode-image_xfm.txt"),
        pet_in_t1=sub("pet", "space-T1w_desc-osem_pet.nii.gz"),
    log:
        logfile("register_pet"),
    benchmark:
        benchfile("register_pet")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=10,
    params:
        registration=config["registration"]["pet_to_t1"],
    script:
        "../../scripts/register_pet.py"
