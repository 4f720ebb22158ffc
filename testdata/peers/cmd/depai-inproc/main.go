package main

import (
	"peers/depaipeer"
	"peers/harness"
)

func main() { harness.Main("depai-inproc", depaipeer.NewInProc) }
