// Fuzzing job (issue 6 §3): n generated REST requests through the parser and planner and n assistant messages through
// the <sql> extraction, in process; then n/10 of the requests over HTTP against the running app with a real table.
// Prints counts and exits 1 on any unexpected exception or 5xx.
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using DbStudio.Core.Console;
using DbStudio.Tests.Fuzz;

namespace DbStudio.Bench;

public static class FuzzBench
{
    public static async Task<int> RunAsync(int n)
    {
        var clock = Stopwatch.StartNew();
        var failures = 0;
        foreach (var r in RestGrammar.Draw(RestGrammar.Request, n))
            if (RestGrammar.ParseAndPlan(r) is { } e && failures++ < 5)
                Console.WriteLine($"UNEXPECTED {e.GetType().Name}: {r.Method} ?{r.QueryString}\n  {e.Message}");
        Console.WriteLine($"parser + planner: {n:N0} inputs, {failures} unexpected exceptions, {clock.Elapsed.TotalSeconds:F1} s");

        clock.Restart();
        var extractionFailures = 0;
        foreach (var text in RestGrammar.Draw(RestGrammar.AssistantText, n, 60))
        {
            try { if (AssistantSql.ExtractBlocks(text).Any(b => !text.Contains(b))) extractionFailures++; }
            catch (Exception e) { if (extractionFailures++ < 5) Console.WriteLine($"UNEXPECTED {e.GetType().Name} extracting from {text.Length} chars"); }
        }
        Console.WriteLine($"<sql> extraction: {n:N0} inputs, {extractionFailures} failures, {clock.Elapsed.TotalSeconds:F1} s");

        await using var host = await BenchHost.StartAsync(["http://127.0.0.1:0"]);
        await host.App.StartAsync();
        var baseUrl = host.App.Urls.First();
        var project = await host.CreateProjectAsync(await host.CreateUserAsync(), baseUrl);
        var setup = await host.App.Services.GetRequiredService<SqlConsole>().RunAsync(project.Id, """
            create table t (id serial primary key, name text, qty int, price numeric, meta jsonb, at timestamptz, user_id uuid);
            insert into t (name, qty, price, meta, at) select 'row ' || g, g, g * 1.5, jsonb_build_object('g', g), now() from generate_series(1, 20) g
            """);
        if (setup.FirstOrDefault(r => r.Error is not null) is { } failed) throw new InvalidOperationException(failed.Error!.Message);
        using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
        clock.Restart();
        var statuses = new SortedDictionary<int, int>();
        var serverErrors = 0;
        var i = 0;
        foreach (var r in RestGrammar.Draw(RestGrammar.Request, n / 10))
        {
            var req = new HttpRequestMessage(new HttpMethod(r.Method), $"/db/{project.Id}/rest/t?{r.QueryString}");
            if (i++ % 2 == 0) req.Headers.Add("apikey", project.AnonKey);
            else req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", project.ApiKey);
            foreach (var pref in r.Prefer) req.Headers.TryAddWithoutValidation("Prefer", pref);
            if (r.Range is not null) req.Headers.TryAddWithoutValidation("Range", r.Range);
            if (r.Accept is not null) req.Headers.TryAddWithoutValidation("Accept", r.Accept);
            if (r.Body is not null) req.Content = new StringContent(r.Body, Encoding.UTF8, "application/json");
            using var res = await http.SendAsync(req);
            statuses[(int)res.StatusCode] = statuses.GetValueOrDefault((int)res.StatusCode) + 1;
            if ((int)res.StatusCode >= 500 && serverErrors++ < 5)
                Console.WriteLine($"{(int)res.StatusCode}: {r.Method} ?{r.QueryString} → {await res.Content.ReadAsStringAsync()}");
        }
        Console.WriteLine($"HTTP: {n / 10:N0} requests, {serverErrors} 5xx, {clock.Elapsed.TotalSeconds:F1} s; statuses " +
                          string.Join(", ", statuses.Select(kv => $"{kv.Key}×{kv.Value}")));
        return failures + extractionFailures + serverErrors == 0 ? 0 : 1;
    }
}
