# Plugin requirements for current Packer (>= 1.10 no longer bundles the
# amazon builder, so `packer init amazon-linux/` must install it first).
#
# This block lives in its own file on purpose: Debian's Packer 1.6.6, which CI
# uses to validate the templates offline, rejects `required_plugins`
# ("Blocks of type "required_plugins" are not expected here"). CI therefore
# validates a copy of this directory without this file (scripts/lint-images.sh).
# Keep everything else in the templates within what 1.6.6 understands.
packer {
  required_version = ">= 1.10.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
  }
}
