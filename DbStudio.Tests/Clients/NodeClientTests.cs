// Real clients, unchanged: the node scripts in DbStudio.Tests/js run @supabase/postgrest-js (and later the
// eventsource client) against the running app on its real port.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Clients;

public class NodeClientTests(TestApp app)
{
    [Fact]
    public async Task Postgrest_js_works_unchanged_against_the_rest_api()
    {
        var platform = await app.NewUserClientAsync();
        var (exit, output) = await NodeScript.RunAsync("postgrest.test.mjs", new()
        {
            ["BASE_URL"] = app.BaseUrl.ToString(),
            ["PLATFORM_TOKEN"] = platform.DefaultRequestHeaders.Authorization!.Parameter!,
        });
        Assert.True(exit == 0, output + "\napp errors:\n" + string.Join("\n", app.Factory.Errors));
        Assert.Matches(@"# pass \d+", output);
        Assert.Contains("# fail 0", output);
    }

    [Fact]
    public async Task Supabase_js_works_unchanged_for_rest_auth_and_realtime()
    {
        var platform = await app.NewUserClientAsync();
        var (exit, output) = await NodeScript.RunAsync("supabase.test.mjs", new()
        {
            ["BASE_URL"] = app.BaseUrl.ToString(),
            ["PLATFORM_TOKEN"] = platform.DefaultRequestHeaders.Authorization!.Parameter!,
        });
        Assert.True(exit == 0, output);
        Assert.Matches(@"# pass \d+", output);
        Assert.Contains("# fail 0", output);
    }
}

public static class NodeScript
{
    private static readonly SemaphoreSlim InstallLock = new(1, 1);

    public static string Folder([CallerFilePath] string here = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "..", "js"));

    public static async Task<(int Exit, string Output)> RunAsync(string script, Dictionary<string, string> env)
    {
        var dir = Folder();
        await InstallLock.WaitAsync();
        try
        {
            // Missing, or installed before a package was added to package.json (an older checkout's node_modules).
            if (!Directory.Exists(Path.Combine(dir, "node_modules")) || Dependencies(dir).Any(d => !Directory.Exists(Path.Combine(dir, "node_modules", d))))
            {
                var (code, log) = await Run("npm", ["ci", "--no-audit", "--no-fund"], dir, [], TimeSpan.FromMinutes(5));
                if (code != 0) return (code, "npm ci failed:\n" + log);
            }
        }
        finally { InstallLock.Release(); }
        // A test that hangs fails on its own (with its name) after two minutes instead of taking the whole run's five.
        // realtime-js needs a global WebSocket: Node 22+ has one; Node 20.10+ has it behind a flag.
        string[] flags = await NodeMajorAsync() < 22 ? ["--experimental-websocket"] : [];
        return await Run("node", [.. flags, "--test", "--test-reporter=tap", "--test-concurrency=1", "--test-timeout=120000", script], dir, env,
            TimeSpan.FromMinutes(5));
    }

    private static IEnumerable<string> Dependencies(string dir)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "package.json")));
        return doc.RootElement.GetProperty("dependencies").EnumerateObject().Select(p => p.Name).ToList();
    }

    private static async Task<int> NodeMajorAsync()
    {
        var (_, version) = await Run("node", ["--version"], Folder(), [], TimeSpan.FromSeconds(30));
        return int.TryParse(version.Trim().TrimStart('v').Split('.')[0], out var major) ? major : 0;
    }

    private static async Task<(int, string)> Run(string file, string[] args, string dir, Dictionary<string, string> env, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); return (-1, "timed out\n" + await stdout + await stderr); }
        return (p.ExitCode, await stdout + await stderr);
    }
}
