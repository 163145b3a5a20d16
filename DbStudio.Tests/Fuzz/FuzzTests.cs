// Fuzzing (issue 6 §3), a few thousand inputs per run; the benchmark job `fuzz` runs 100,000+. Bad input must give a
// RestException (→ 4xx with the error JSON), never another exception, and over HTTP never a 500.
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using DbStudio.Core.Console;
using DbStudio.Core.Rest;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Fuzz;

public class FuzzTests(TestApp app)
{
    [Fact]
    public void The_parser_and_planner_answer_every_input_with_a_result_or_a_RestException()
    {
        var failures = RestGrammar.Draw(RestGrammar.Request, 5000).Select(r => (r, e: RestGrammar.ParseAndPlan(r))).Where(x => x.e is not null).ToList();
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(5).Select(f => $"{f.r.Method} ?{f.r.QueryString} prefer={string.Join("|", f.r.Prefer)} range={f.r.Range} body={f.r.Body?[..Math.Min(80, f.r.Body.Length)]}\n  {f.e}")));
    }

    [Fact]
    public void Sql_block_extraction_never_throws_and_returns_text_from_inside_the_tags()
    {
        foreach (var text in RestGrammar.Draw(RestGrammar.AssistantText, 3000, 60))
        {
            var blocks = AssistantSql.ExtractBlocks(text);
            Assert.All(blocks, b => Assert.Contains(b, text));
        }
        // A long hostile message: many openings, no closing (a backtracking trap for a naive pattern).
        var trap = string.Concat(Enumerable.Repeat("<sql>select 1; ", 20_000));
        Assert.Empty(AssistantSql.ExtractBlocks(trap));
    }

    [Fact]
    public async Task Two_thousand_random_requests_over_HTTP_never_get_a_500_and_always_get_the_error_json()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "fuzz");
        await TestApp.SqlAsync(owner, p.Id, """
            create table t (id serial primary key, name text, qty int, price numeric, meta jsonb, at timestamptz, user_id uuid);
            insert into t (name, qty, price, meta, at) select 'row ' || g, g, g * 1.5, jsonb_build_object('g', g), now() from generate_series(1, 20) g
            """);
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var keys = new[] { (p.AnonKey, (string?)null), (p.AnonKey, (string?)p.ApiKey), ((string)null!, p.ApiKey) };
        var i = 0;
        var bad = new List<string>();
        var statuses = new Dictionary<int, int>();
        foreach (var r in RestGrammar.Draw(RestGrammar.Request, 2000))
        {
            var (anon, bearer) = keys[i++ % keys.Length];
            var req = new HttpRequestMessage(new HttpMethod(r.Method), $"/db/{p.Id}/rest/t?{r.QueryString}");
            if (anon is not null) req.Headers.Add("apikey", anon);
            if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            foreach (var pref in r.Prefer) req.Headers.TryAddWithoutValidation("Prefer", pref);
            if (r.Range is not null) req.Headers.TryAddWithoutValidation("Range", r.Range);
            if (r.Accept is not null) req.Headers.TryAddWithoutValidation("Accept", r.Accept);
            if (r.Body is not null) req.Content = new StringContent(r.Body, Encoding.UTF8, "application/json");
            var res = await http.SendAsync(req);
            var body = await res.Content.ReadAsStringAsync();
            statuses[(int)res.StatusCode] = statuses.GetValueOrDefault((int)res.StatusCode) + 1;
            if ((int)res.StatusCode >= 500 || (int)res.StatusCode >= 400 && r.Method != "HEAD" && !body.Contains("\"message\""))
                bad.Add($"{(int)res.StatusCode} {r.Method} ?{r.QueryString} body={r.Body?[..Math.Min(60, r.Body.Length)]} → {body[..Math.Min(200, body.Length)]}");
        }
        Assert.True(bad.Count == 0, $"{bad.Count} bad answers:\n" + string.Join("\n", bad.Take(8)));
        // The inputs reach past the parser: successes and refusals both, in numbers.
        var summary = string.Join(", ", statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}×{kv.Value}"));
        Assert.True(statuses.Where(kv => kv.Key < 300).Sum(kv => kv.Value) > 100, summary);
        Assert.True(statuses.Where(kv => kv.Key >= 400).Sum(kv => kv.Value) > 100, summary);
        TestContext.Current.SendDiagnosticMessage($"statuses: {summary}");
    }
}
