-- .sym and .symbi files are Symbiont files.
vim.filetype.add({ extension = { sym = "symbiont", symbi = "symbiont" } })
