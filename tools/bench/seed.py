# The seed's second program, exactly as the notes give it: a pool of 10
# workers prints "hello for Nth time!" for 0..99. `make bench` times it as a
# whole process, start to exit, against the C pool's hello demo.
import multiprocessing as mp

def fx(x):
    print("hello for "+str(x)+"th time!")

if __name__=="__main__":
    numbers = list()
    for n in range(0,100):
       numbers.append(n)

    with mp.Pool(10) as p:
        p.map(fx,numbers)
