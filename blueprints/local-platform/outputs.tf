output "env_dir" {
  description = "Directory holding everything of this account."
  value       = terraform_data.env_dir.triggers_replace.path
}

output "database_path" {
  description = "Path of the account's SQLite database."
  value       = terraform_data.database.triggers_replace.path
}

output "service_endpoint" {
  description = "Endpoint of the service."
  value       = "http://127.0.0.1:${terraform_data.service.triggers_replace.port}"
}

output "dns_zone" {
  description = "DNS zone of the account."
  value       = terraform_data.dns_zone.triggers_replace.zone
}

output "network_cidr" {
  description = "IPv4 network of the account."
  value       = terraform_data.network.triggers_replace.cidr
}
