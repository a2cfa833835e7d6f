/*
 * live_faults: what a page fault costs on the running Linux kernel.
 *
 * Four kinds, each over NPAGES pages, REPS measured runs after one warm-up run:
 *   anon_write  private anonymous mapping, write one byte per page (allocate + zero a page)
 *   anon_read   private anonymous mapping, read one byte per page (maps the shared zero page)
 *   cow_write   parent writes every page, forks; the child writes one byte per page
 *               (copy-on-write: copy the parent's page); the child reports through a pipe
 *   file_read   shared read-only mapping of a memfd (tmpfs) file whose pages are already in
 *               the page cache: the live stand-in for an XipFs fault, which maps an existing
 *               page without allocating; the kernel's fault-around maps several pages per fault
 *
 * Transparent huge pages are switched off on each mapping (MADV_NOHUGEPAGE) so that every
 * fault is a 4 KiB one. Minor faults are counted with getrusage(RUSAGE_SELF).
 *
 * Times are CPU time of the process (CLOCK_PROCESS_CPUTIME_ID, user + system), not wall clock.
 *
 * Output, one line per kind, fields as key=value:
 *   fault kind=anon_write pages=16384 reps=5 us_per_page=0.123 faults_per_page=1.000 us_per_fault=0.123
 * Each figure is the median over the measured runs.
 *
 * usage: live_faults [NPAGES [REPS]]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPS 101

struct sample {
	double ns;      /* time for the whole touch loop */
	double faults;  /* minor faults taken during it */
};

static long page_size;

static void die(const char *what)
{
	fprintf(stderr, "live_faults: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* CPU time of this process (user + system: a page fault is system time), which on a shared
 * machine is steady where wall clock is not; the simulator side measures the same way. */
static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_minflt;
}

static char *map_anon(size_t npages)
{
	char *p = mmap(NULL, npages * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap anonymous");
	madvise(p, npages * page_size, MADV_NOHUGEPAGE);
	return p;
}

/* Touch one byte of each page, writing or reading; return time and faults taken. */
static struct sample touch(char *p, size_t npages, int write)
{
	volatile char *v = p;
	struct sample s;
	double f0 = minor_faults(), t0 = now_ns();
	unsigned sum = 0;

	for (size_t i = 0; i < npages; i++) {
		if (write)
			v[i * page_size] = 1;
		else
			sum += v[i * page_size];
	}
	s.ns = now_ns() - t0;
	s.faults = minor_faults() - f0;
	if (sum == 12345)       /* keep the reads */
		fputc(' ', stderr);
	return s;
}

static struct sample anon_fault(size_t npages, int write)
{
	char *p = map_anon(npages);
	struct sample s = touch(p, npages, write);

	munmap(p, npages * page_size);
	return s;
}

static struct sample anon_write(size_t npages)
{
	return anon_fault(npages, 1);
}

static struct sample anon_read(size_t npages)
{
	return anon_fault(npages, 0);
}

static struct sample cow_write(size_t npages)
{
	char *p = map_anon(npages);
	struct sample s;
	int fd[2];
	pid_t pid;

	touch(p, npages, 1);            /* the parent owns every page */
	if (pipe(fd))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		s = touch(p, npages, 1);        /* every write breaks COW */
		if (write(fd[1], &s, sizeof(s)) != sizeof(s))
			_exit(1);
		_exit(0);
	}
	close(fd[1]);
	if (read(fd[0], &s, sizeof(s)) != sizeof(s)) {
		fprintf(stderr, "live_faults: child sent no COW timing\n");
		exit(1);
	}
	close(fd[0]);
	waitpid(pid, NULL, 0);
	munmap(p, npages * page_size);
	return s;
}

static struct sample file_read(size_t npages)
{
	size_t len = npages * page_size;
	int fd = memfd_create("live_faults", 0);
	struct sample s;
	char *w, *r;

	if (fd < 0)
		die("memfd_create");
	if (ftruncate(fd, len))
		die("ftruncate");
	w = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (w == MAP_FAILED)
		die("mmap memfd for filling");
	touch(w, npages, 1);            /* bring every page into the page cache */
	munmap(w, len);
	r = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (r == MAP_FAILED)
		die("mmap memfd");
	madvise(r, len, MADV_NOHUGEPAGE);
	s = touch(r, npages, 0);
	munmap(r, len);
	close(fd);
	return s;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void measure(const char *kind, struct sample (*fn)(size_t), size_t npages, int reps)
{
	double per_page[MAX_REPS], faults[MAX_REPS], per_fault[MAX_REPS];

	fn(npages);                     /* warm-up: page tables, allocator caches */
	for (int i = 0; i < reps; i++) {
		struct sample s = fn(npages);

		per_page[i] = s.ns / 1e3 / npages;
		faults[i] = s.faults / npages;
		per_fault[i] = s.faults > 0 ? s.ns / 1e3 / s.faults : 0;
	}
	printf("fault kind=%s pages=%zu reps=%d us_per_page=%.4f faults_per_page=%.4f us_per_fault=%.4f\n",
	       kind, npages, reps, median(per_page, reps), median(faults, reps),
	       median(per_fault, reps));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	long npages = argc > 1 ? atol(argv[1]) : 16384;
	int reps = argc > 2 ? atoi(argv[2]) : 5;

	if (npages < 1 || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "usage: live_faults [NPAGES>=1 [REPS 1..%d]]\n", MAX_REPS);
		return 2;
	}
	page_size = sysconf(_SC_PAGESIZE);
	measure("anon_write", anon_write, npages, reps);
	measure("anon_read", anon_read, npages, reps);
	measure("cow_write", cow_write, npages, reps);
	measure("file_read", file_read, npages, reps);
	return 0;
}
