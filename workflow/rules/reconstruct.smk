# Reconstruction: MRI coil combination, CT filtered back-projection, PET OSEM with CT attenuation correction.


rule reconstruct_mri:
    input:
        kspace=rules.simulate_mri.output.kspace,
    output:
        t1w=sub("anat", "desc-recon_T1w.nii.gz"),
    params:
        library=library("reconstruct_mri"),
    log:
        logfile("reconstruct_mri"),
    benchmark:
        benchfile("reconstruct_mri")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        f"{ENVS}/torch.yaml"
    script:
        "../../scripts/reconstruct_mri.py"


rule reconstruct_ct:
    input:
        sinogram=rules.simulate_ct.output.sinogram,
    output:
        ct=sub("ct", "desc-fbp_ct.nii.gz"),
    params:
        library=library("reconstruct_ct"),
        ct=config["reconstruction"]["ct"],
    log:
        logfile("reconstruct_ct"),
    benchmark:
        benchfile("reconstruct_ct")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        f"{ENVS}/torch.yaml"
    script:
        "../../scripts/reconstruct_ct.py"


rule reconstruct_pet:
    input:
        sinogram=rules.simulate_pet.output.sinogram,
        ct=rules.reconstruct_ct.output.ct,
    output:
        pet=sub("pet", "desc-osem_pet.nii.gz"),
    params:
        library=library("reconstruct_pet"),
        pet=config["reconstruction"]["pet"],
    log:
        logfile("reconstruct_pet"),
    benchmark:
        benchfile("reconstruct_pet")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        f"{ENVS}/torch.yaml"
    script:
        "../../scripts/reconstruct_pet.py"
