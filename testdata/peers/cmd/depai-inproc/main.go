package main

import "peers/depaipeer"

func main() { depaipeer.Main("depai-inproc", depaipeer.NewInProc) }
