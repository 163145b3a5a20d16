// The REST fast path (plain values, JSON written in .NET) must give exactly what row_to_json gives.
using System.Net.Http.Headers;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class RowJsonParityTests(TestApp app)
{
    [Fact]
    public async Task Every_supported_type_reads_the_same_as_row_to_json()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "parity");
        var setup = await TestApp.SqlAsync(owner, p.Id, """
            create table t (id serial primary key, txt text, n int, big bigint, ok boolean, f float8, num numeric,
              at timestamptz, d date, j json, jb jsonb, u uuid, v varchar(255), ts timestamp, sm smallint, iv interval, b bytea, r real);
            insert into t (txt, n, big, ok, f, num, at, d, j, jb, u, v, ts, sm, iv, b, r) values
              ('plain', 1, 9007199254740993, true, 1.5, 1.50, '2024-01-02 03:04:05.123456+00', '2024-01-02', '{"a": [1, 2]}', '{"b": {"c": null}}',
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'v', '2024-01-02 03:04:05', -7, '1 day 02:00:00', '\x0102', 0.1),
              (E'quotes " and \\ and \n newline and ünïcödé and 😀', -2147483648, -1, false, 'NaN', 'NaN', 'infinity', '-infinity',
               '[]', '"s"', null, '', '-infinity', 32767, '-1 mon', '', 'NaN'),
              ('floats', 0, 0, null, 'Infinity', 123456789012345678901234567890.123456789, '2024-06-01 12:00:00+05:30', null,
               'null', '1e-7', null, null, null, null, null, null, '-Infinity'),
              (E'\u0001 control \t tab </script> & <b>', null, null, null, -0.000001, -0.0, null, null, '{"dup": 1, "dup": 2}', '[1, "x", true]', null, null, null, null, null, null, 3.4028235e38),
              ('more floats', 1, 1, true, 1e300, 0, null, null, null, null, null, null, null, null, null, null, -0.0),
              ('tiny', 2, 2, false, 5e-324, 1e-20, null, null, null, null, null, null, null, null, null, null, 1.17549435e-38)
            """);
        Assert.All(setup, r => Assert.False(r.TryGetProperty("error", out var e), e.ToString()));

        var expected = await TestApp.SqlAsync(owner, p.Id, "select json_agg(row_to_json(t) order by id)::text from t");
        var fromPostgres = expected[0].GetProperty("rows")[0][0].GetString()!;

        await AssertSameAsync(p, "order=id", fromPostgres);

        // Aliases and casts take the same path.
        expected = await TestApp.SqlAsync(owner, p.Id, """
            select json_agg(row_to_json(s) order by id)::text from (select id, num::text as amount, n::float8 as x, big::int8 as big,
              f::numeric as exact, ok::text as flag, at::date as day, jb::text as raw, d::timestamptz as midnight, sm::int2 as sm
              from t) s
            """);
        await AssertSameAsync(p, "order=id&select=id,amount:num::text,x:n::float8,big::int8,exact:f::numeric,flag:ok::text," +
            "day:at::date,raw:jb::text,midnight:d::timestamptz,sm::int2", expected[0].GetProperty("rows")[0][0].GetString()!);
    }

    private async Task AssertSameAsync(ProjectInfo p, string query, string fromPostgres)
    {
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/t?{query}");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        var res = await app.Factory.CreateClient().SendAsync(req);
        var fromRest = await res.Content.ReadAsStringAsync();
        Assert.True(res.IsSuccessStatusCode, fromRest);
        using var a = JsonDocument.Parse(fromPostgres);
        using var b = JsonDocument.Parse(fromRest);
        Assert.True(Same(a.RootElement, b.RootElement), $"row_to_json:\n{fromPostgres}\nREST:\n{fromRest}");
    }

    /// <summary>Structural equality that keeps duplicate keys (json does) and compares numbers by their exact text.</summary>
    private static bool Same(JsonElement x, JsonElement y)
    {
        if (x.ValueKind != y.ValueKind) return false;
        switch (x.ValueKind)
        {
            case JsonValueKind.Object:
                var xs = x.EnumerateObject().ToList();
                var ys = y.EnumerateObject().ToList();
                return xs.Count == ys.Count && xs.Zip(ys).All(p => p.First.Name == p.Second.Name && Same(p.First.Value, p.Second.Value));
            case JsonValueKind.Array:
                return x.GetArrayLength() == y.GetArrayLength() && x.EnumerateArray().Zip(y.EnumerateArray()).All(p => Same(p.First, p.Second));
            case JsonValueKind.String:
                return x.GetString() == y.GetString();
            case JsonValueKind.Number:
                // Exact text (numeric keeps its scale); floats may differ only in exponent spelling (1e-06 / 1E-06).
                return x.GetRawText() == y.GetRawText()
                    || x.GetRawText().Contains('e', StringComparison.OrdinalIgnoreCase) && x.GetDouble() == y.GetDouble();
            default:
                return true;
        }
    }

    [Theory]
    [InlineData("2024-01-02 03:04:05+00", "2024-01-02T03:04:05+00:00")]
    [InlineData("2024-01-02 03:04:05.5-03", "2024-01-02T03:04:05.5-03:00")]
    [InlineData("2024-06-01 12:00:00+05:30", "2024-06-01T12:00:00+05:30")]
    [InlineData("2024-01-02 03:04:05", "2024-01-02T03:04:05")]
    [InlineData("infinity", "infinity")]
    public void Timestamps_are_written_as_postgres_json_writes_them(string text, string json) =>
        Assert.Equal(json, RowJson.IsoTimestamp(text));
}
