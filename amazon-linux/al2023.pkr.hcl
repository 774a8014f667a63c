# EKS-ready Amazon Linux 2023 node AMI with nodehealthd baked in.
#
# Source: the official EKS-optimized AL2023 AMI for the chosen Kubernetes
# minor, arch and accelerator flavour, as published by AWS
# (awslabs/amazon-eks-ami), e.g. amazon-eks-node-al2023-x86_64-standard-1.33-v20260728.
# We do not rebuild the EKS node (kubelet, containerd, nodeadm, drivers): we add
# the nodehealthd RPM, enable its unit, drop the image config and clean up.
#
# Layout follows awslabs/amazon-eks-ami templates/al2023: this template, the
# provisioners/*.sh scripts run in order, and runtime/rootfs/ copied onto /.

locals {
  # Official EKS AL2023 flavours. arm64 + neuron does not exist (Inferentia and
  # Trainium are x86_64 only). Packer 1.6.6 (CI's validator) cannot raise a
  # custom error, so the guard refers to a local that does not exist, whose
  # name is the message; nothing depends on the guard, which keeps it the
  # only error reported:
  #   This object does not have an attribute named
  #   "no_official_eks_al2023_ami_for_this_arch_and_accelerator__neuron_is_x86_64_only".
  source_flavours = ["x86_64-standard", "x86_64-nvidia", "x86_64-neuron", "arm64-standard", "arm64-nvidia"]
  flavour         = "${var.arch}-${var.accelerator}"
  flavour_guard   = contains(local.source_flavours, local.flavour) ? true : local.no_official_eks_al2023_ami_for_this_arch_and_accelerator__neuron_is_x86_64_only

  # amazon-eks-node-al2023-<arch>-<accelerator>-<k8s minor>-v<YYYYMMDD>
  source_ami_name = "amazon-eks-node-al2023-${local.flavour}-${var.kubernetes_version}-${var.source_ami_release}"

  default_instance_types = {
    x86_64 = "m6i.large"
    arm64  = "m6g.large"
  }
  instance_type = var.instance_type != "" ? var.instance_type : local.default_instance_types[var.arch]

  # RPM arch as uname -m and rpm print it.
  rpm_arches = {
    x86_64 = "x86_64"
    arm64  = "aarch64"
  }
  rpm_file   = basename(var.nodehealthd_rpm)
  remote_rpm = "${var.working_dir}/${local.rpm_file}"
  # nodehealthd-<version>-<release>.<arch>.rpm -> <version>; split rather
  # than regex because regex does not work in Packer 1.6.6 (CI's validator).
  rpm_name_parts = concat(split("-", local.rpm_file), ["", ""])
  rpm_version    = local.rpm_name_parts[0] == "nodehealthd" && local.rpm_name_parts[1] != "" ? local.rpm_name_parts[1] : "unknown"

  build_time = formatdate("YYYYMMDDhhmmss", timestamp())
  ami_name   = "${var.ami_name_prefix}-al2023-${local.flavour}-${var.kubernetes_version}-v${local.build_time}"

  ami_tags = merge({
    Name                = local.ami_name
    os                  = "al2023"
    arch                = var.arch
    accelerator         = var.accelerator
    kubernetes_version  = var.kubernetes_version
    nodehealthd_version = local.rpm_version
    source_ami_id       = "{{ .SourceAMI }}"
    source_ami_name     = "{{ .SourceAMIName }}"
    build_time          = local.build_time
  }, var.tags)

  provisioner_env = [
    "WORKING_DIR=${var.working_dir}",
    "NODEHEALTHD_RPM=${local.remote_rpm}",
    "NODEHEALTHD_RPM_SHA256=${var.nodehealthd_rpm_sha256}",
    "EXPECTED_ARCH=${local.rpm_arches[var.arch]}",
    "ACCELERATOR=${var.accelerator}",
    "KUBERNETES_VERSION=${var.kubernetes_version}",
  ]
}

source "amazon-ebs" "al2023" {
  region        = var.region
  instance_type = local.instance_type
  ami_name      = local.ami_name
  ami_description = join(" ", [
    "EKS-optimized AL2023 node (${local.flavour}, Kubernetes ${var.kubernetes_version})",
    "with nodehealthd ${local.rpm_version}; source {{ .SourceAMIName }}",
  ])

  source_ami_filter {
    filters = {
      name                = local.source_ami_name
      architecture        = var.arch
      root-device-type    = "ebs"
      virtualization-type = "hvm"
      state               = "available"
    }
    owners      = var.source_ami_owners
    most_recent = true
  }

  ssh_username         = var.ssh_username
  ssh_interface        = var.ssh_interface
  subnet_id            = var.subnet_id
  security_group_id    = var.security_group_id
  iam_instance_profile = var.iam_instance_profile

  ena_support   = true
  sriov_support = true
  encrypt_boot  = var.encrypt_boot
  kms_key_id    = var.kms_key_id
  ami_regions   = var.ami_regions
  ami_users     = var.ami_users

  tags          = local.ami_tags
  snapshot_tags = local.ami_tags
  run_tags = {
    Name = "packer-${local.ami_name}"
  }
}

build {
  name    = "nodehealthd-al2023"
  sources = ["source.amazon-ebs.al2023"]

  provisioner "shell" {
    inline        = ["mkdir -p '${var.working_dir}/rootfs'"]
    remote_folder = var.remote_folder
  }

  provisioner "file" {
    source      = "${path.root}/runtime/rootfs/"
    destination = "${var.working_dir}/rootfs/"
  }

  provisioner "file" {
    source      = var.nodehealthd_rpm
    destination = local.remote_rpm
  }

  # Each script runs as root with the variables above in its environment.
  provisioner "shell" {
    execute_command  = "chmod +x '{{ .Path }}'; sudo env {{ .Vars }} '{{ .Path }}'"
    remote_folder    = var.remote_folder
    environment_vars = local.provisioner_env
    scripts = [
      "${path.root}/provisioners/install-nodehealthd.sh",
      "${path.root}/provisioners/configure-nodehealthd.sh",
      "${path.root}/provisioners/validate.sh",
      "${path.root}/provisioners/cleanup.sh",
    ]
  }

  post-processor "manifest" {
    output     = "nodehealthd-ami-manifest.json"
    strip_path = true
    custom_data = {
      source_ami_name     = local.source_ami_name
      nodehealthd_version = local.rpm_version
      kubernetes_version  = var.kubernetes_version
      arch                = var.arch
      accelerator         = var.accelerator
    }
  }
}
