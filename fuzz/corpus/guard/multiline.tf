a = "${jsonencode({
"k" = "v"
})}-x"
