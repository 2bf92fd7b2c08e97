# The network: one public and one private subnet per zone, carved out of the
# account's CIDR at render time (public: netnum 0.., private: netnum 8..).
resource "terraform_data" "network" {
  triggers_replace = {
    file            = "${local.env_dir}/network.json"
    cidr            = "{{ config.network.cidr }}01v{{ config.network.cidr }}02"
    public_subnets  = [{% for i in range(config.network.azs) %}"{{ config.network.cidr | cidrsubnet(4, i) }}01v{{ config.network.cidr | cidrsubnet(4, i) }}02"{% if not loop.last %}, {% endif %}{% endfor %}]
    private_subnets = [{% for i in range(config.network.azs) %}"{{ config.network.cidr | cidrsubnet(4, 8 + i) }}01v{{ config.network.cidr | cidrsubnet(4, 8 + i) }}02"{% if not loop.last %}, {% endif %}{% endfor %}]
  }
  input = {
    tags = local.stamp_tags
  }

  provisioner "local-exec" {
    command = "python3 ${path.module}/scripts/network.py create"
    environment = {
      NETWORK_FILE    = self.triggers_replace.file
      NETWORK_CIDR    = self.triggers_replace.cidr
      PUBLIC_SUBNETS  = jsonencode(self.triggers_replace.public_subnets)
      PRIVATE_SUBNETS = jsonencode(self.triggers_replace.private_subnets)
      STAMP_TAGS      = jsonencode(self.input.tags)
    }
  }

  provisioner "local-exec" {
    when    = destroy
    command = "python3 ${path.module}/scripts/network.py destroy"
    environment = {
      NETWORK_FILE = self.triggers_replace.file
    }
  }

  depends_on = [terraform_data.env_dir]
}
