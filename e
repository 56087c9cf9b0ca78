map: worker 18956 exited without the results for items 0 to 1
map: worker 18956 killed by signal 9
