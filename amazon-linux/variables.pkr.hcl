# Input variables of the nodehealthd EKS AL2023 node image.
# See amazon-linux/README.md for the full table and examples.

# --- What to build -----------------------------------------------------------

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the source EKS AMI, e.g. 1.33."
  validation {
    # (regex, can and tonumber do not work in Packer 1.6.6, which CI uses)
    condition     = substr(var.kubernetes_version, 0, 2) == "1." && trim(var.kubernetes_version, "0123456789") == "." && length(var.kubernetes_version) >= 3
    error_message = "The kubernetes_version value must be a minor version such as 1.33 (no patch level, no leading v)."
  }
}

variable "arch" {
  type        = string
  default     = "x86_64"
  description = "CPU architecture: x86_64 or arm64 (the names used in the official EKS AMI names)."
  validation {
    condition     = contains(["x86_64", "arm64"], var.arch)
    error_message = "The arch value must be x86_64 or arm64."
  }
}

variable "accelerator" {
  type        = string
  default     = "standard"
  description = "Which official EKS AL2023 AMI flavour is the source: standard, nvidia or neuron (neuron exists for x86_64 only)."
  validation {
    condition     = contains(["standard", "nvidia", "neuron"], var.accelerator)
    error_message = "The accelerator value must be standard, nvidia or neuron."
  }
}

variable "region" {
  type        = string
  default     = "us-west-2"
  description = "AWS region to build in (the source AMI is looked up there)."
}

# --- Source AMI --------------------------------------------------------------

variable "source_ami_release" {
  type        = string
  default     = "v*"
  description = "Release suffix of the source AMI name: v* takes the newest release, v20260728 pins one."
  validation {
    condition     = substr(var.source_ami_release, 0, 1) == "v" && trim(var.source_ami_release, "v0123456789*") == ""
    error_message = "The source_ami_release value must be v* or a release such as v20260728."
  }
}

variable "source_ami_owners" {
  type        = list(string)
  default     = ["602401143452"]
  description = "Accounts that publish the official EKS AMIs. 602401143452 covers the commercial regions that are not opt-in; opt-in regions, GovCloud and China use other accounts (see README)."
}

# --- Build instance ------------------------------------------------------------

variable "instance_type" {
  type        = string
  default     = ""
  description = "Build instance type; empty picks the per-arch default (m6i.large for x86_64, m6g.large for arm64)."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the build instance; empty uses the default VPC."
}

variable "security_group_id" {
  type        = string
  default     = ""
  description = "Security group for the build instance; empty lets Packer create a temporary one."
}

variable "iam_instance_profile" {
  type        = string
  default     = ""
  description = "Instance profile for the build instance (e.g. for SSM-based SSH)."
}

variable "ssh_interface" {
  type        = string
  default     = ""
  description = "How Packer reaches the instance: public_ip, private_ip, public_dns, private_dns or session_manager; empty = Packer's default."
}

variable "ssh_username" {
  type        = string
  default     = "ec2-user"
  description = "Login user of the source AMI."
}

variable "remote_folder" {
  type        = string
  default     = "/tmp"
  description = "Where Packer puts the provisioner scripts on the instance."
}

variable "working_dir" {
  type        = string
  default     = "/tmp/nodehealthd-ami"
  description = "Directory on the instance for uploaded files; removed by cleanup.sh."
}

# --- Output AMI --------------------------------------------------------------

variable "ami_name_prefix" {
  type        = string
  default     = "nodehealthd-eks"
  description = "Prefix of the AMI name: <prefix>-al2023-<arch>-<accelerator>-<k8s>-v<YYYYMMDDhhmmss>."
}

variable "ami_regions" {
  type        = list(string)
  default     = []
  description = "Extra regions to copy the AMI to."
}

variable "ami_users" {
  type        = list(string)
  default     = []
  description = "Account IDs allowed to launch the AMI."
}

variable "encrypt_boot" {
  type        = bool
  default     = false
  description = "Encrypt the AMI's root snapshot."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for encrypt_boot; empty uses the account's default EBS key."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Extra tags for the AMI and its snapshots."
}

# --- nodehealthd ---------------------------------------------------------------

variable "nodehealthd_rpm" {
  type        = string
  description = "Local path of the nodehealthd RPM for this arch (make packages: dist/nodehealthd-<ver>-1.x86_64.rpm or .aarch64.rpm)."
}

variable "nodehealthd_rpm_sha256" {
  type        = string
  default     = ""
  description = "Optional SHA-256 of the RPM; when set the install step refuses a file that does not match."
  validation {
    condition     = contains([0, 64], length(var.nodehealthd_rpm_sha256)) && trim(var.nodehealthd_rpm_sha256, "0123456789abcdef") == ""
    error_message = "The nodehealthd_rpm_sha256 value must be empty or 64 lower-case hex digits."
  }
}
