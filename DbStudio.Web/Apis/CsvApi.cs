// CSV in and out of a table (DESIGN §7): POST /api/projects/{id}/tables/{table}/import[?dry_run=true][&create=true]
// (multipart, the CSV in field `file`; create: a new table made from the file, in the same transaction as its rows) and
// GET /api/projects/{id}/tables/{table}/export[?filters] (text/csv, streamed with COPY). Owner only, as every
// /api/projects route; the work is Core/Csv's (and Schema's for a new table), on the project's own login.
using System.Security.Claims;
using DbStudio.Core;
using DbStudio.Core.Csv;
using DbStudio.Core.Panel;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Core.Schema;
using DbStudio.Core.Catalog;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace DbStudio.Web.Apis;

public sealed record ImportErrorJson(long line, string? column, string code, string message);
public sealed record ImportResponse(bool dryRun, long rows, long imported, IReadOnlyList<ImportErrorJson> errors);

public static class CsvApi
{
    public static RouteGroupBuilder MapCsvApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/projects/{id}/tables/{table}").RequireAuthorization().WithTags("CSV");
        // Bearer-token API (the platform's cookie is SameSite=Lax, so another site cannot post a form with it).
        g.MapPost("/import", Import).DisableAntiforgery();
        g.MapGet("/export", Export);
        return g;
    }

    /// <summary>
    /// The CSV into the table, all or nothing; <c>?dry_run=true</c> checks every row and imports nothing. With
    /// <c>?create=true</c> the table is made from the file (types inferred from its first 1,000 rows, its <c>id</c> column
    /// as the primary key, else an added <c>id SERIAL</c>) in the same transaction as the rows: a bad row leaves no table.
    /// </summary>
    private static async Task<IResult> Import(string id, string table, HttpContext ctx, ClaimsPrincipal user, ProjectService projects,
        CsvTransfer csv, SchemaEditor editor, SchemaCache schemas, IOptions<DbStudioOptions> options, CancellationToken ct)
    {
        if (!await projects.IsOwnerAsync(ProjectsApi.UserId(user), id, ct)) return TypedResults.NotFound();
        var max = options.Value.Csv.MaxImportBytes;
        if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = max;
        if (!ctx.Request.HasFormContentType)
            return Problem("Send the CSV as multipart/form-data in the field \"file\"");
        IFormCollection form;
        try { form = await ctx.Request.ReadFormAsync(new FormOptions { MultipartBodyLengthLimit = max }, ct); }
        catch (Exception e) when (e is InvalidDataException or BadHttpRequestException)
        {
            return Problem($"The upload could not be read: {e.Message}", e is BadHttpRequestException { StatusCode: 413 } ? 413 : 400);
        }
        if (form.Files.GetFile("file") is not { } file) return Problem("The CSV must be in the form field \"file\"");
        bool Flag(string name) => ctx.Request.Query[name].FirstOrDefault() is { } v
                                  && (v == "" || v.Equals("true", StringComparison.OrdinalIgnoreCase) || v == "1");
        var dryRun = Flag("dry_run");
        var create = Flag("create");
        if (create && await schemas.FindTableAsync(id, table, ct) is not null)
            return Problem($"Table \"{table}\" exists already: import into it without ?create=true", 409);

        ImportResult? result;
        try
        {
            result = create ? await editor.CreateAndImportAsync(id, table, file.OpenReadStream, dryRun, ct)
                : await csv.ImportAsync(id, table, file.OpenReadStream, dryRun, ct);
        }
        catch (CsvImportException e)
        {
            return TypedResults.Json(new ImportResponse(dryRun, 0, 0, [.. e.Errors.Select(Json)]), statusCode: 422);
        }
        if (result is null) return TypedResults.NotFound();
        var body = new ImportResponse(result.DryRun, result.Rows, result.Imported, [.. result.Errors.Select(Json)]);
        return TypedResults.Json(body, statusCode: result.Errors.Count > 0 ? 422 : 200);
    }

    private static ImportErrorJson Json(ImportError e) => new(e.Line, e.Column, e.Code, e.Message);

    private static IResult Problem(string detail, int status = 400) =>
        TypedResults.Problem(detail, statusCode: status, title: "The import was refused");

    /// <summary>
    /// The table's rows as CSV streamed with COPY: every row, or those the query selects — the Data tab's filter form
    /// (where=column.operator.value, any=1) or PostgREST's (filters, or=, select=, order=, limit=, offset=). A filter that
    /// does not parse, or that PostgreSQL refuses (an unknown column, a value of the wrong type), is a 400 saying why.
    /// </summary>
    private static async Task Export(string id, string table, HttpContext ctx, ClaimsPrincipal user, ProjectService projects,
        CsvTransfer csv, CancellationToken ct)
    {
        if (!await projects.IsOwnerAsync(ProjectsApi.UserId(user), id, ct))
        {
            ctx.Response.StatusCode = 404;
            return;
        }
        RestRequest request;
        try
        {
            request = TableExport.Request(table,
                ctx.Request.Query.SelectMany(kv => kv.Value.Select(v => new KeyValuePair<string, string>(kv.Key, v ?? ""))));
        }
        catch (RestException e)
        {
            await Refused(ctx, new ExportRefused(e.Status, e.Error));
            return;
        }
        ctx.Response.ContentType = "text/csv; charset=utf-8";
        ctx.Response.Headers.ContentDisposition = new System.Net.Mime.ContentDisposition { FileName = table + ".csv" }.ToString();
        ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        if (await csv.ExportAsync(id, table, ctx.Response.Body, request, ct) is { } refused)
        {
            ctx.Response.Clear(); // nothing was written: the CSV headers go
            await Refused(ctx, refused);
        }
    }

    private static Task Refused(HttpContext ctx, ExportRefused refused) =>
        TypedResults.Problem(
            string.Join(" ", new[] { refused.Error.Message, refused.Error.Details?.ToString(), refused.Error.Hint }.Where(t => !string.IsNullOrEmpty(t))),
            statusCode: refused.Status, title: "The export was refused",
            extensions: new Dictionary<string, object?> { ["code"] = refused.Error.Code }).ExecuteAsync(ctx);
}
