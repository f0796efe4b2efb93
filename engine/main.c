/* main.c: the `craft` executable: a LuaJIT host. Everything user-facing (argument handling,
 * subcommands, the REPL) lives in Lua (lua/craft/cli.lua); this file only finds the Lua
 * library, starts the interpreter and reports errors that escape it. */
#include "craft.h"
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The Lua library is looked up, in order: $CRAFT_LUA_PATH, <exe>/../lua (build tree),
 * <exe>/../share/craft/lua (installed). */
static void set_package_path(lua_State *L) {
    char exe[PATH_MAX], buf[4 * PATH_MAX + 512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    const char *env = getenv("CRAFT_LUA_PATH");
    snprintf(
        buf, sizeof buf,
        "%s%s%s/../lua/?.lua;%s/../lua/?/init.lua;%s/../share/craft/lua/?.lua;%s/../share/craft/lua/?/init.lua;",
        env ? env : "", env ? ";" : "", exe, exe, exe, exe);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushstring(L, buf);
    lua_insert(L, -2);
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = "(error object is not a string)";
    if (getenv("CRAFT_TRACEBACK")) {
        luaL_traceback(L, L, msg, 1);
    } else {
        lua_pushstring(L, msg);
    }
    return 1;
}

/* OpenMP threads that busy-wait between parallel regions collapse throughput when the cores
 * are shared with other processes (measured: a 9 s run took 236 s next to two other jobs).
 * libgomp reads its wait policy once, at load, so when the user has not chosen one, craft sets
 * OMP_WAIT_POLICY=PASSIVE and starts itself again. */
static void choose_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("CRAFT_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    setenv("CRAFT_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv); /* returns only on failure: then go on as we are */
}

/* An error that ends the program. In a run of several ranks it names the rank, and the job is
 * ended (MPI_Abort): the other ranks would otherwise wait for this one in their next collective. */
static int fail(const char *msg) {
    int rank = 0, size = 1;
    if (craft_dist_active()) craft_dist_init(&rank, &size, NULL, NULL);
    if (size > 1) fprintf(stderr, "craft: rank %d of %d: %s\n", rank, size, msg);
    else fprintf(stderr, "craft: %s\n", msg);
    fflush(stderr);
    if (size > 1) craft_dist_abort(1);
    return 1;
}

int main(int argc, char **argv) {
    choose_wait_policy(argv);
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "craft: cannot create the Lua state (out of memory)\n");
        return 1;
    }
    luaL_openlibs(L);
    set_package_path(L);
    lua_pushcfunction(L, traceback);
    lua_getglobal(L, "require");
    lua_pushstring(L, "craft.cli");
    if (lua_pcall(L, 1, 1, 1)) return fail(lua_tostring(L, -1));
    lua_getfield(L, -1, "main");
    lua_newtable(L);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    int rc = 0;
    if (lua_pcall(L, 1, 1, 1)) {
        rc = fail(lua_tostring(L, -1));
    } else if (lua_isnumber(L, -1)) {
        rc = (int)lua_tointeger(L, -1);
    }
    lua_close(L);
    craft_dist_finalize();
    return rc;
}
